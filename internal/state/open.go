package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Open opens the store the state-store setting names: "sqlite" (the
// default: DATA_DIR/state.db) or a PostgreSQL URL, postgres://… or
// postgresql://….
func Open(ctx context.Context, setting, dataDir string) (Store, error) {
	if err := CheckSetting(setting); err != nil {
		return nil, err
	}
	if setting == "" || setting == "sqlite" {
		return OpenSQLite(filepath.Join(dataDir, "state.db"))
	}
	return OpenPostgres(ctx, setting)
}

// CheckSetting validates a state-store setting without connecting.
func CheckSetting(setting string) error {
	switch {
	case setting == "" || setting == "sqlite":
		return nil
	case strings.HasPrefix(setting, "postgres://"), strings.HasPrefix(setting, "postgresql://"):
		if _, err := pgxpool.ParseConfig(setting); err != nil {
			return fmt.Errorf("not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DB?sslmode=verify-full): %w", errors.Unwrap(err))
		}
		return nil
	}
	return errors.New("want sqlite (the data directory's state.db) or postgres://USER@HOST:PORT/DB?sslmode=verify-full")
}

// Describe names the store of a setting for logs and status, without a
// password.
func Describe(setting string) string {
	if setting == "" || setting == "sqlite" {
		return "sqlite"
	}
	return redact(setting)
}
