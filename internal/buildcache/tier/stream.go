package tier

// The batch stream is the answer to POST /go/batch, whose body lists action
// IDs one a line (those of a build's manifest the client does not have
// yet): every one of them in one response, so a runner gets the whole
// previous build in one round trip instead of one per action. The stream
// is
//
//	pave-go-batch v1 N\n              N: how many actions follow
//	then, per action in the request's order, one of
//	ACTION OUTPUTID SIZE UNIXNANO\n   followed by SIZE bytes of output
//	ACTION OUTPUTID SIZE UNIXNANO =\n the output was already sent in this stream
//	ACTION -\n                        not in the cache (the client remembers the miss)
//	end\n                             the stream is complete
//
// The client verifies every output against its OutputID, as it does for
// single fetches; a stream cut short just leaves the rest to single
// fetches.
const StreamMagic = "pave-go-batch v1"

// MaxManifestActions bounds a manifest and a batch: a build of a few
// thousand packages asks for some tens of thousands of actions.
const MaxManifestActions = 1 << 18
