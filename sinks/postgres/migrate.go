package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file of migrations/.
type migration struct {
	version int
	name    string
	sql     string
	sum     string // of the file as embedded, before placeholders
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("postgres: migration %s: name must start with its number", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: base, sql: string(b), sum: hex.EncodeToString(sum[:8])})
	}
	return out, nil
}

// ReaderRole is the read-only role of a schema: <schema>_reader.
func ReaderRole(schema string) string { return schema + "_reader" }

// Migrate brings schema up to the newest embedded migration. It holds an
// advisory lock for the schema meanwhile, so instances starting together
// apply each migration once; each migration is one transaction. A migration
// that was applied from a different file is an error: migrations are never
// edited, only added.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	lock := "skuwatch.migrate." + schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lock); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lock)

	s := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s); err != nil {
		return fmt.Errorf("postgres: migrate: create schema %s: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s+`.schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	applied := map[int]string{}
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM "+s+".schema_migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return err
		}
		applied[v] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	reader := ReaderRole(schema)
	fill := strings.NewReplacer("{{schema}}", s, "{{reader}}", pgx.Identifier{reader}.Sanitize(),
		"{{reader_literal}}", "'"+strings.ReplaceAll(reader, "'", "''")+"'")
	for _, m := range ms {
		if sum, ok := applied[m.version]; ok {
			if sum != m.sum {
				return fmt.Errorf("postgres: migration %s was applied from a different file (checksum %s, now %s): migrations are added, never edited", m.name, sum, m.sum)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+s); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, fill.Replace(m.sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+s+".schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.version, m.name, m.sum)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.name, err)
		}
	}
	return nil
}
