package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/backoff"
	"github.com/evstore/evstore/local"
)

// pgBaseline is the comparison point for deposit and transfer: the usual
// way to build an event store on PostgreSQL. A command reads its streams'
// events in one query, folds them with the same bank fold evstore uses,
// decides, and inserts its events in one statement; a unique (stream,
// version) index turns a concurrent write into a violation, which is
// retried like evstore's conflicts. Everything lives in a schema of its own,
// dropped at the end.
type pgBaseline struct {
	url    string
	schema string
	admin  *pgx.Conn
	info   string // server version and durability settings, for the note
}

func openPGBaseline(ctx context.Context, url string) (*pgBaseline, error) {
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("baseline: connect to PostgreSQL: %w", err)
	}
	p := &pgBaseline{url: url, admin: admin, schema: fmt.Sprintf("evstore_bench_%08x", rand.Uint32())}
	var version, fsync, syncCommit string
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").Scan(&version, &fsync, &syncCommit); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("baseline: %w", err)
	}
	p.info = fmt.Sprintf("PostgreSQL %s, fsync=%s, synchronous_commit=%s", version, fsync, syncCommit)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{p.schema}.Sanitize()); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("baseline: create schema: %w", err)
	}
	return p, nil
}

func (p *pgBaseline) close() {
	// The run's context may be cancelled by now; the schema must go anyway.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{p.schema}.Sanitize()+" CASCADE")
	p.admin.Close(ctx)
}

func (p *pgBaseline) table() string { return pgx.Identifier{p.schema, "events"}.Sanitize() }

// reset creates an empty events table holding the opened, funded accounts.
func (p *pgBaseline) reset(ctx context.Context, accounts int) error {
	t := p.table()
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + t,
		"CREATE TABLE " + t + ` (
			position bigserial PRIMARY KEY,
			stream   text        NOT NULL,
			version  bigint      NOT NULL,
			type     text        NOT NULL,
			data     jsonb       NOT NULL,
			id       uuid        NOT NULL DEFAULT gen_random_uuid(),
			time     timestamptz NOT NULL DEFAULT now(),
			UNIQUE (stream, version))`,
	} {
		if _, err := p.admin.Exec(ctx, q); err != nil {
			return err
		}
	}
	rows := make([][]any, 0, 2*accounts)
	for i := range accounts {
		id := accountID(i)
		opened, _ := json.Marshal(map[string]string{"account": id, "owner": "Owner " + strconv.Itoa(i)})
		funded, _ := json.Marshal(pgMoney{Amount: openingBalance, Balance: openingBalance})
		rows = append(rows,
			[]any{commands.AccountStream(id), int64(1), commands.EventAccountOpened, opened},
			[]any{commands.AccountStream(id), int64(2), commands.EventDeposited, funded})
	}
	if _, err := p.admin.CopyFrom(ctx, pgx.Identifier{p.schema, "events"}, []string{"stream", "version", "type", "data"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	_, err := p.admin.Exec(ctx, "ANALYZE "+t)
	return err
}

// pgMoney is the data of a bank money event, as the bank commands write it.
type pgMoney struct {
	Amount  int64  `json:"amount"`
	Balance int64  `json:"balance"`
	To      string `json:"to,omitempty"`
	From    string `json:"from,omitempty"`
}

// bench runs deposit or transfer against PostgreSQL with the same clients,
// accounts and duration as the evstore run.
func (p *pgBaseline) bench(ctx context.Context, env *workloadEnv, workload string) ([]Result, error) {
	accounts := env.scaled(10_000, 1000)
	if err := p.reset(ctx, accounts); err != nil {
		return nil, fmt.Errorf("baseline: set up accounts: %w", err)
	}
	nconns := env.cfg.BaselineConns
	if nconns <= 0 {
		nconns = env.cfg.Clients
	}
	// A channel of connections is all the pool this needs: every client
	// takes one per command and gives it back.
	pool := make(chan *pgx.Conn, nconns)
	defer func() {
		close(pool)
		for c := range pool {
			c.Close(context.Background())
		}
	}()
	for range nconns {
		c, err := pgx.Connect(ctx, p.url)
		if err != nil {
			return nil, fmt.Errorf("baseline: connect: %w", err)
		}
		pool <- c
	}
	cmd := pgCommand{table: p.table()}
	r := runClients(ctx, env.cfg.Clients, env.cfg.Duration, func(s *sample) {
		for {
			amount := int64(1 + rand.IntN(100))
			from := rand.IntN(accounts)
			to := rand.IntN(accounts - 1)
			if to >= from {
				to++
			}
			t := time.Now()
			conn := <-pool
			var n, retries int
			var err error
			if workload == "deposit" {
				n, retries, err = cmd.run(ctx, conn, []string{accountID(from)}, func(accts []commands.Account) ([]format.EventData, error) {
					a := accts[0]
					if !a.Open {
						return nil, &commands.AccountError{Account: a.ID, Err: commands.ErrUnknownAccount}
					}
					return []format.EventData{pgMoneyEvent(a.ID, commands.EventDeposited, pgMoney{Amount: amount, Balance: a.Balance + amount})}, nil
				})
			} else {
				n, retries, err = cmd.run(ctx, conn, []string{accountID(from), accountID(to)}, func(accts []commands.Account) ([]format.EventData, error) {
					src, dst := accts[0], accts[1]
					switch {
					case !src.Open:
						return nil, &commands.AccountError{Account: src.ID, Err: commands.ErrUnknownAccount}
					case !dst.Open:
						return nil, &commands.AccountError{Account: dst.ID, Err: commands.ErrUnknownAccount}
					case src.Balance < amount:
						return nil, &commands.InsufficientFundsError{Account: src.ID, Op: "transfer", Balance: src.Balance, Amount: amount}
					}
					return []format.EventData{
						pgMoneyEvent(src.ID, commands.EventTransferSent, pgMoney{Amount: amount, To: dst.ID, Balance: src.Balance - amount}),
						pgMoneyEvent(dst.ID, commands.EventTransferReceived, pgMoney{Amount: amount, From: src.ID, Balance: dst.Balance + amount}),
					}, nil
				})
			}
			pool <- conn
			if !s.timed(t, n, retries, err) {
				return
			}
		}
	})
	r.Workload = workload
	r.Note = fmt.Sprintf("%s, %d connections", p.info, nconns)
	return []Result{r}, nil
}

func pgMoneyEvent(account, typ string, d pgMoney) format.EventData {
	b, _ := json.Marshal(d)
	return format.EventData{Stream: commands.AccountStream(account), Type: typ, Data: b}
}

// pgCommand executes a bank command the PostgreSQL way, with the executor's
// default retry policy, so both sides retry conflicts alike.
type pgCommand struct{ table string }

func (c pgCommand) run(ctx context.Context, conn *pgx.Conn, ids []string, decide func([]commands.Account) ([]format.EventData, error)) (events, retries int, err error) {
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = commands.AccountStream(id)
	}
	for {
		accts := make([]commands.Account, len(ids))
		for i, id := range ids {
			accts[i].ID = id
		}
		rows, err := conn.Query(ctx, "SELECT position, stream, version, type, data FROM "+c.table+" WHERE stream = ANY($1) ORDER BY position", streams)
		if err != nil {
			return 0, retries, err
		}
		var ev format.Event
		var foldErr error
		_, err = pgx.ForEachRow(rows, []any{&ev.Position, &ev.Stream, &ev.Version, &ev.Type, &ev.Data}, func() error {
			for i := range streams {
				if streams[i] == ev.Stream && foldErr == nil {
					foldErr = accts[i].Apply(ev)
				}
			}
			return nil
		})
		if err == nil {
			err = foldErr
		}
		if err != nil {
			return 0, retries, err
		}
		out, err := decide(accts)
		if err != nil {
			return 0, retries, err
		}
		q := "INSERT INTO " + c.table + " (stream, version, type, data) VALUES "
		args := make([]any, 0, 4*len(out))
		for i, e := range out {
			if i > 0 {
				q += ", "
			}
			n := len(args)
			q += fmt.Sprintf("($%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4)
			var version uint64
			for j := range streams {
				if streams[j] == e.Stream {
					version = accts[j].Version + 1
				}
			}
			args = append(args, e.Stream, int64(version), e.Type, e.Data)
		}
		_, err = conn.Exec(ctx, q, args...)
		if err == nil {
			return len(out), retries, nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			return 0, retries, err
		}
		if retries >= executor.DefaultMaxRetries {
			return 0, retries, fmt.Errorf("gave up after %d retries: %w", retries, local.ErrConflict)
		}
		retries++
		wait := backoff.Policy{Min: executor.DefaultBaseBackoff, Max: executor.DefaultMaxBackoff, Jitter: 1}.Wait(retries)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return 0, retries, err
		}
	}
}
