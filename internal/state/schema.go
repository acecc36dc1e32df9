package state

import (
	"errors"
	"fmt"

	"github.com/pave-platform/pave/internal/buildinfo"
)

// SchemaVersion is the newest schema this Pave writes. Each backend keeps
// one migration per version (sqliteMigrations, postgresMigrations), applied
// in order at open; the version and the Pave that applied it are recorded.
const SchemaVersion = 2

// ErrNewerSchema refuses a store written by a newer Pave: this one would
// not know what the newer columns and rows mean. Nothing is written.
var ErrNewerSchema = errors.New("the state store's schema is newer than this Pave")

func newerSchema(where string, found int, by string) error {
	return fmt.Errorf("%s has schema version %d (written by Pave %s); this Pave (%s) knows versions up to %d: run the newer Pave, or upgrade this one: %w",
		where, found, by, buildinfo.Read().Version, SchemaVersion, ErrNewerSchema)
}
