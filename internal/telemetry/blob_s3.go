package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options locate a bucket of an S3-compatible store (AWS S3, MinIO,
// Ceph RGW, SeaweedFS, versitygw, …).
type S3Options struct {
	// Endpoint is host[:port] without a scheme (s3.amazonaws.com when empty).
	Endpoint string
	Bucket   string
	// Prefix is prepended to every key ("pave/cold"), so one bucket can hold
	// several installations.
	Prefix string
	// Insecure talks plain HTTP, for a store on loopback or a private network.
	Insecure bool
	Region   string
	// AccessKey and SecretKey, when empty, come from the standard AWS
	// environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN), so secrets never sit in pave.yaml or on a command
	// line.
	AccessKey, SecretKey, SessionToken string
}

// S3Blob keeps blobs as objects under a prefix of one bucket. A PUT of an
// S3 object is atomic (readers see the old object, none, or the whole new
// one), which is what Blob requires.
type S3Blob struct {
	client *minio.Client
	bucket string
	prefix string // "" or ends with "/"
	where  string // for errors: "s3://bucket/prefix at endpoint"
}

// s3IdleConns is how many idle connections to the store the client keeps
// (minio-go keeps 16). A query asks for the row groups of every block it
// reads at once: a rare phrase sends twenty or more ranged GETs together,
// a trace lookup up to traceReaders blocks' worth. With 16 kept, every
// burst past 16 opened new connections and closed them again after it;
// over TLS to a real S3 each new one costs a TCP and a TLS handshake, two
// or three round trips more on that GET, which the whole query waits for.
const s3IdleConns = 128

// NewS3Blob connects to the bucket and checks that it exists, so a wrong
// endpoint, bucket or credential is reported when `pave up` starts rather
// than at the first cold move a day later.
func NewS3Blob(ctx context.Context, o S3Options) (*S3Blob, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3 blob store: a bucket is required, e.g. s3://pave-telemetry/cold")
	}
	if o.Endpoint == "" {
		o.Endpoint = "s3.amazonaws.com"
	}
	prefix := strings.Trim(o.Prefix, "/")
	if prefix != "" {
		if err := checkBlobKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 blob store prefix: %w", err)
		}
		prefix += "/"
	}
	creds := credentials.NewEnvAWS()
	if o.AccessKey != "" || o.SecretKey != "" {
		creds = credentials.NewStaticV4(o.AccessKey, o.SecretKey, o.SessionToken)
	}
	tr, err := minio.DefaultTransport(!o.Insecure)
	if err != nil {
		return nil, fmt.Errorf("s3 blob store at %s: %w", o.Endpoint, err)
	}
	tr.MaxIdleConnsPerHost = s3IdleConns
	tr.MaxIdleConns = max(tr.MaxIdleConns, s3IdleConns)
	c, err := minio.New(o.Endpoint, &minio.Options{Creds: creds, Secure: !o.Insecure, Region: o.Region, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("s3 blob store at %s: %w", o.Endpoint, err)
	}
	b := &S3Blob{client: c, bucket: o.Bucket, prefix: prefix, where: fmt.Sprintf("s3://%s/%s at %s", o.Bucket, prefix, o.Endpoint)}
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (check the endpoint, TLS setting and the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment variables)", b.where, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: bucket %q does not exist; create it first", b.where, o.Bucket)
	}
	return b, nil
}

func (b *S3Blob) object(key string) (string, error) {
	if err := checkBlobKey(key); err != nil {
		return "", err
	}
	return b.prefix + key, nil
}

func (b *S3Blob) Put(ctx context.Context, key string, data []byte) error {
	obj, err := b.object(key)
	if err != nil {
		return err
	}
	_, err = b.client.PutObject(ctx, b.bucket, obj, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("%s: put %s: %w", b.where, key, err)
	}
	return nil
}

func (b *S3Blob) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := b.object(key)
	if err != nil {
		return nil, err
	}
	r, err := b.client.GetObject(ctx, b.bucket, obj, minio.GetObjectOptions{})
	if err == nil {
		defer r.Close()
		var data []byte
		data, err = io.ReadAll(r)
		if err == nil {
			return data, nil
		}
	}
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, key)
	}
	return nil, fmt.Errorf("%s: get %s: %w", b.where, key, err)
}

func (b *S3Blob) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	obj, err := b.object(key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("%s: get %s: invalid range %d+%d", b.where, key, off, n)
	}
	var o minio.GetObjectOptions
	if err := o.SetRange(off, off+n-1); err != nil {
		return nil, err
	}
	// Core's GetObject sends the request at once and hands back the body;
	// the client's lazy Object passes every read through a goroutine of
	// its own (about a tenth more of the client's CPU per small GET, which
	// a query's burst of them spends on the core it decodes on).
	r, _, _, err := minio.Core{Client: b.client}.GetObject(ctx, b.bucket, obj, o)
	if err == nil {
		defer r.Close()
		data := make([]byte, n)
		var k int
		k, err = io.ReadFull(r, data)
		if err == nil {
			return data, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("range %d+%d: only %d bytes", off, n, k)
		}
	}
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, key)
	}
	return nil, fmt.Errorf("%s: get %s: %w", b.where, key, err)
}

func (b *S3Blob) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for o := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("%s: list %q: %w", b.where, prefix, o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, b.prefix))
	}
	return keys, nil
}

func (b *S3Blob) Delete(ctx context.Context, key string) error {
	obj, err := b.object(key)
	if err != nil {
		return err
	}
	// Deleting a missing object succeeds in S3, as it does in DirBlob.
	if err := b.client.RemoveObject(ctx, b.bucket, obj, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("%s: delete %s: %w", b.where, key, err)
	}
	return nil
}

// ColdStore is a parsed telemetry-cold-store setting.
type ColdStore struct {
	Dir string     // kind "dir": the directory ("" means <data dir>/cold)
	S3  *S3Options // kind "s3"
}

// ParseColdStore reads the telemetry-cold-store setting:
//
//	dir                                     <data dir>/telemetry/cold (the default)
//	dir:/mnt/archive/pave                   another directory, e.g. a network volume
//	s3://bucket/prefix                      AWS S3 over TLS
//	s3://bucket/prefix?endpoint=host:port&insecure=1&region=r
//
// Credentials are never part of the setting; they come from the AWS
// environment variables.
func ParseColdStore(spec string) (ColdStore, error) {
	switch {
	case spec == "" || spec == "dir":
		return ColdStore{}, nil
	case strings.HasPrefix(spec, "dir:"):
		d := strings.TrimPrefix(spec, "dir:")
		if !filepath.IsAbs(d) {
			return ColdStore{}, errors.New("dir: needs an absolute directory, e.g. dir:/mnt/archive/pave")
		}
		return ColdStore{Dir: filepath.Clean(d)}, nil
	case !strings.HasPrefix(spec, "s3://"):
		return ColdStore{}, errors.New("want dir, dir:/absolute/path or s3://bucket/prefix?endpoint=host:port&insecure=1")
	}
	u, err := url.Parse(spec)
	if err != nil {
		// url.Error repeats the input, which may hold a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return ColdStore{}, fmt.Errorf("not a valid URL: %w", err)
	}
	if u.User != nil {
		return ColdStore{}, errors.New("credentials do not belong in the setting; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Host == "" {
		return ColdStore{}, errors.New("a bucket is required, e.g. s3://pave-telemetry/cold")
	}
	o := S3Options{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if o.Prefix != "" {
		if err := checkBlobKey(o.Prefix); err != nil {
			return ColdStore{}, fmt.Errorf("prefix: %w", err)
		}
	}
	for k, v := range u.Query() {
		switch val := v[len(v)-1]; k {
		case "endpoint":
			if val == "" || strings.ContainsAny(val, "/@ ") {
				return ColdStore{}, fmt.Errorf("endpoint %q: want host or host:port without a scheme, e.g. 127.0.0.1:9000", val)
			}
			o.Endpoint = val
		case "insecure":
			switch val {
			case "1", "true":
				o.Insecure = true
			case "0", "false", "":
			default:
				return ColdStore{}, fmt.Errorf("insecure=%q: want 1 or 0", val)
			}
		case "region":
			o.Region = val
		default:
			return ColdStore{}, fmt.Errorf("unknown parameter %q (known: endpoint, insecure, region)", k)
		}
	}
	return ColdStore{S3: &o}, nil
}

// RedactColdStore is the setting as it may be shown in an error or a log:
// a password someone put in the URL is masked.
func RedactColdStore(spec string) string {
	u, err := url.Parse(spec)
	if err != nil {
		if strings.Contains(spec, "@") {
			return "(unparseable URL, hidden: it may hold credentials)"
		}
		return spec
	}
	return u.Redacted()
}

// OpenColdStore builds the Blob of a setting; nil means the default
// directory under the store's data directory.
func OpenColdStore(ctx context.Context, spec string) (Blob, error) {
	cs, err := ParseColdStore(spec)
	if err != nil {
		return nil, fmt.Errorf("cold store %s: %w", RedactColdStore(spec), err)
	}
	switch {
	case cs.S3 != nil:
		b, err := NewS3Blob(ctx, *cs.S3)
		if err != nil {
			return nil, err
		}
		return b, nil
	case cs.Dir != "":
		return DirBlob{Root: cs.Dir}, nil
	}
	return nil, nil
}
