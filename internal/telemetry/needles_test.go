package telemetry

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// A cold store whose blocks hold a few rare phrases among common lines,
// moved to the blob store and reopened (so the needle files are read back
// from disk), with an empty local cache before each query.
type needleFixture struct {
	t     *testing.T
	dir   string
	blob  *countingBlob
	now   time.Time
	s     *Embedded
	all   []Log
	rare  []string
	attrP string // a phrase in two messages and one attribute value
}

func newNeedleFixture(t *testing.T, blob Blob, noNeedles bool) *needleFixture {
	f := &needleFixture{t: t, dir: t.TempDir(), blob: &countingBlob{Blob: blob}, now: t0.Add(30 * time.Minute)}
	f.s = f.open(noNeedles)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(11, 110))
	logs := randomLogs(r, 12000)
	// Messages are templates, as structured logging writes them (the
	// variables are in fields and attributes); the attributes keep
	// randomLogs' words and numbers.
	templates := []string{"charge authorized", "cache miss", "retrying upstream call", "psp timeout", "validation failed", "ledger entry written"}
	for i := range logs {
		logs[i].Message = templates[r.IntN(len(templates))]
	}
	// Five phrases of four lines each, spread over the blocks and services.
	for p := 0; p < 5; p++ {
		phrase := fmt.Sprintf("card declined: fraud rule R-%04d", 9000+p)
		f.rare = append(f.rare, phrase)
		for k := 0; k < 4; k++ {
			logs[r.IntN(len(logs))].Message = phrase
		}
	}
	f.attrP = "ticket Z-77 reopened"
	logs[100].Message, logs[9000].Message = "support: "+f.attrP, f.attrP+" by ops"
	logs[5000].Attrs = Attrs{{"note", "was " + f.attrP}}
	for i := 0; i < len(logs); i += 3000 {
		if err := f.s.AppendLogs(ctx, slices.Clone(logs[i:i+3000])); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := f.s.Query(ctx, Query{Limit: MaxLimit + 2000})
	if err != nil || len(all.Logs) != len(logs) {
		t.Fatalf("%d lines stored, %v; want %d", len(all.Logs), err, len(logs))
	}
	f.all = all.Logs
	f.now = t0.Add(5 * time.Hour)
	if err := f.s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.s.Stats(); st.HotBlocks != 0 || st.ColdBlocks < 2 {
		t.Fatalf("after the move: %+v; the test needs every block cold", st)
	}
	f.reopen(noNeedles)
	return f
}

func (f *needleFixture) open(noNeedles bool) *Embedded {
	return openTest(f.t, f.dir, func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows, o.NoNeedles = f.blob, time.Hour, 4096, noNeedles
		o.Now = func() time.Time { return f.now }
	})
}

func (f *needleFixture) reopen(noNeedles bool) {
	f.s.Close()
	f.s = f.open(noNeedles)
}

func (f *needleFixture) scan(q Query) []string {
	var want []string
	for i := range f.all {
		if q.matches(&f.all[i]) {
			want = append(want, lineKey(&f.all[i]))
		}
	}
	sort.Strings(want)
	return want
}

// ask answers q with an empty local cache and returns the lines and the
// GETs (whole and ranged) the query sent to the blob store. The cache
// fills it leaves behind are not counted: they run in the background, and
// a count taken when the query returns would hold some of them or none
// depending on how busy the machine is.
func (f *needleFixture) ask(q Query) (keys []string, gets int64) {
	f.t.Helper()
	f.s.cacheWG.Wait()
	if err := os.RemoveAll(f.s.cache); err != nil {
		f.t.Fatal(err)
	}
	before := f.blob.asked.Load()
	q.Limit = len(f.all)
	res, err := f.s.Query(askedBy(context.Background()), q)
	if err != nil || len(res.Warnings) > 0 {
		f.t.Fatalf("%+v: %v %v", q, err, res.Warnings)
	}
	for i := range res.Logs {
		keys = append(keys, lineKey(&res.Logs[i]))
	}
	sort.Strings(keys)
	f.s.cacheWG.Wait() // read-ahead the query started and did not need
	return keys, f.blob.asked.Load() - before
}

// A rare phrase in the cold tier is answered from the needle files, on a
// real S3 server as on a directory, with a full scan's lines and a small
// part of the GETs the same store sends without them: a block is read
// from the blob store only when its groups' attribute filters cannot rule
// the phrase's words out of the attribute values, which the files do not
// cover (here those values hold most of the phrase's words, so the 2% of
// false positives of a group's attribute filter sends a block to the blob
// store now and then). A phrase also in an attribute value is read from
// the blob store, and random queries and phrases cut anywhere still
// answer a full scan's lines.
func TestNeedleFilesAnswerRarePhrasesWithoutTheBlobStore(t *testing.T) {
	for _, p := range blobProviders() {
		t.Run(p.name, func(t *testing.T) {
			without := newNeedleFixture(t, p.open(t), true)
			f := newNeedleFixture(t, p.open(t), false)
			st := f.s.Stats()
			if st.NeedleBytes == 0 || st.NeedleBytes*10 > st.ColdBytes {
				t.Fatalf("needle files hold %d bytes for %d cold bytes: want some, and a small share", st.NeedleBytes, st.ColdBytes)
			}
			var gets, getsWithout int64
			for _, phrase := range f.rare {
				// The second phrase's whole words are all in attribute values.
				for i, q := range []Query{{Contains: phrase}, {Contains: phrase[len("card declined: "):]}, {Contains: phrase, Service: "s1"}} {
					got, n := f.ask(q)
					if want := f.scan(q); !reflect.DeepEqual(got, want) || len(want) == 0 && q.Service == "" {
						t.Fatalf("%+v: %d lines, a full scan finds %d", q, len(got), len(want))
					}
					if i != 1 {
						_, m := without.ask(q)
						gets, getsWithout = gets+n, getsWithout+m
					}
				}
			}
			if getsWithout == 0 || gets*4 > getsWithout {
				t.Fatalf("the rare phrases sent %d GETs with needle files, %d without: want at most a quarter", gets, getsWithout)
			}
			t.Logf("rare phrases: %d GETs with needle files, %d without", gets, getsWithout)
			if n := f.s.Stats().NeedleReads; n == 0 {
				t.Fatal("no block was answered from a needle file")
			}

			// In an attribute value too: the files do not cover attributes.
			got, gets := f.ask(Query{Contains: f.attrP})
			if want := f.scan(Query{Contains: f.attrP}); len(want) != 3 || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: %d lines, a full scan finds %d (want 3)", f.attrP, len(got), len(want))
			}
			if gets == 0 {
				t.Fatalf("%q is in an attribute value, which no needle file covers, yet no block was read", f.attrP)
			}

			r := rand.New(rand.NewPCG(5, 50))
			for n := 0; n < 30; n++ {
				q := randomQuery(r, f.all)
				if n%3 == 0 {
					phrase := f.rare[r.IntN(len(f.rare))]
					i := r.IntN(len(phrase))
					q.Contains = phrase[i : i+1+r.IntN(len(phrase)-i)]
				}
				if got, _ := f.ask(q); !reflect.DeepEqual(got, f.scan(q)) {
					t.Fatalf("query %+v: %d lines, a full scan finds %d", q, len(got), len(f.scan(q)))
				}
			}
		})
	}
}

// A damaged needle file is never trusted: one torn on disk is dropped
// when the store opens, one damaged later is dropped at its first read,
// and each block is then read from the blob store with the same answer.
// Files of blocks that are not cold are removed at start, and a block
// fetched whole gets its file back.
func TestNeedleFilesDamagedOrOrphanedAreDropped(t *testing.T) {
	f := newNeedleFixture(t, DirBlob{Root: t.TempDir()}, false)
	q := Query{Contains: f.rare[0]}
	want := f.scan(q)
	var files []string
	filepath.WalkDir(f.s.needleDir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 2 {
		t.Fatalf("%d needle files; the test needs two", len(files))
	}
	// One torn on disk before the store opens, and an orphan.
	b, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], b[:len(b)/2], 0o600)
	orphan := filepath.Join(f.s.needleDir, "2001010100", "logs-1.blk")
	os.MkdirAll(filepath.Dir(orphan), 0o700)
	os.WriteFile(orphan, []byte("PAVENDL1"), 0o600)
	f.reopen(false)
	for _, p := range []string{files[0], orphan} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s is still there after the store opened", p)
		}
	}
	// The others damaged in their lines while the store serves them.
	for _, p := range files[1:] {
		b, _ := os.ReadFile(p)
		x, err := decodeNeedles(b, f.s.needleSeed)
		if err != nil {
			t.Fatal(err)
		}
		b[x.off+int64(len(blockMagic))+2] ^= 0xff
		os.WriteFile(p, b, 0o600)
	}
	for _, phrase := range f.rare {
		q := Query{Contains: phrase}
		if got, _ := f.ask(q); !reflect.DeepEqual(got, f.scan(q)) {
			t.Fatalf("%q: %d lines, a full scan finds %d", phrase, len(got), len(f.scan(q)))
		}
	}
	// A damaged file read was removed, or rebuilt whole when its block
	// followed into the cache.
	f.s.cacheWG.Wait()
	replaced := 0
	for _, p := range files[1:] {
		b, err := os.ReadFile(p)
		if err != nil {
			replaced++
			continue
		}
		if x, err := decodeNeedles(b, f.s.needleSeed); err == nil {
			if _, err := decodeLogRowsWhere(strings.NewReader(string(b[x.off:])), x.meta, "", nil); err == nil {
				replaced++
			}
		}
	}
	if replaced == 0 {
		t.Fatalf("all %d damaged needle files are still there after the phrases were asked", len(files)-1)
	}
	if got, _ := f.ask(q); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %d lines, want %d", q.Contains, len(got), len(want))
	}

	// Every file gone: a query that fetches whole blocks brings them back.
	os.RemoveAll(f.s.needleDir)
	f.reopen(false)
	if st := f.s.Stats(); st.NeedleBytes != 0 {
		t.Fatalf("needle bytes %d after the files were removed", st.NeedleBytes)
	}
	if _, err := f.s.Query(context.Background(), Query{Limit: MaxLimit}); err != nil {
		t.Fatal(err)
	}
	f.s.cacheWG.Wait()
	if st := f.s.Stats(); st.NeedleBytes == 0 {
		t.Fatal("no needle file was rebuilt from the blocks fetched whole")
	}
	reads := f.s.Stats().NeedleReads
	if got, _ := f.ask(q); !reflect.DeepEqual(got, want) || f.s.Stats().NeedleReads == reads {
		t.Fatalf("after the rebuild %q: %d lines (want %d), no needle file read", q.Contains, len(got), len(want))
	}
}

// With NoNeedles the store keeps no needle files, and the same phrases
// are read from the blob store with the same answers.
func TestNoNeedlesReadsTheBlobStore(t *testing.T) {
	f := newNeedleFixture(t, DirBlob{Root: t.TempDir()}, true)
	if st := f.s.Stats(); st.NeedleBytes != 0 {
		t.Fatalf("NoNeedles: %d bytes of needle files", st.NeedleBytes)
	}
	q := Query{Contains: f.rare[1]}
	got, gets := f.ask(q)
	if !reflect.DeepEqual(got, f.scan(q)) || gets == 0 {
		t.Fatalf("%q: %d lines (a scan finds %d), %d GETs", q.Contains, len(got), len(f.scan(q)), gets)
	}
}

// Expiring a cold partition removes its blocks' needle files.
func TestExpiredColdPartitionTakesItsNeedleFiles(t *testing.T) {
	f := newNeedleFixture(t, DirBlob{Root: t.TempDir()}, false)
	f.s.o.DefaultRetention = time.Hour
	f.now = t0.Add(30 * 24 * time.Hour)
	if err := f.s.expireCold(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.s.Stats(); st.ColdBlocks != 0 || st.NeedleBytes != 0 || len(f.s.needles) != 0 {
		t.Fatalf("after expiry: %d cold blocks, %d needle bytes, %d needle files served", st.ColdBlocks, st.NeedleBytes, len(f.s.needles))
	}
}

// pickNeedles keeps its promise on any lines: every listed key's lines
// are all in the file (else a phrase would lose lines), and the file
// stays within its budget, also when every message carries an id.
func TestPickNeedlesListsOnlyKeysWhoseLinesItHolds(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 90))
	shapes := map[string]func(i int) string{
		"templated with rare phrases": func(i int) string {
			if r.IntN(700) == 0 {
				return fmt.Sprintf("card declined: fraud rule R-%04d", r.IntN(20))
			}
			return []string{"charge authorized", "cache miss", "psp timeout"}[r.IntN(3)]
		},
		"an id on every line": func(i int) string { return fmt.Sprintf("order %x paid", r.Uint64()) },
		"an id on every line, and rare phrases": func(i int) string {
			if r.IntN(700) == 0 {
				return fmt.Sprintf("order %x declined: fraud rule R-%04d", r.Uint64(), r.IntN(20))
			}
			return fmt.Sprintf("order %x paid", r.Uint64())
		},
		"random words": func(int) string { return randomLogs(r, 1)[0].Message },
	}
	for name, msg := range shapes {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			logs := make([]Log, 16384)
			for i := range logs {
				logs[i] = Log{Time: t0.Add(time.Duration(i) * time.Millisecond), Service: "s", Message: msg(i)}
			}
			rows, keys := pickNeedles(logs)
			if len(rows) > needleRows(len(logs)) || len(keys) > needleMaxTokens {
				t.Fatalf("%d rows and %d keys; the budget is %d and %d", len(rows), len(keys), needleRows(len(logs)), needleMaxTokens)
			}
			in := map[int]bool{}
			for _, i := range rows {
				in[i] = true
			}
			listed := map[string]bool{}
			for _, k := range keys {
				listed[k] = true
			}
			for i := range logs {
				eachWordKey(logs[i].Message, func(kind byte, tok string) {
					if listed[string(kind)+tok] && !in[i] {
						t.Fatalf("key %c%s is listed but line %d (%q) holding it is not in the file", kind, tok, i, logs[i].Message)
					}
				})
			}
			if strings.HasSuffix(name, "and rare phrases") && !listed["Wrule"] {
				// The ids of one line each come after the words of the
				// phrases' few lines: those lines are all in.
				t.Fatalf("the phrases' words are not listed among the ids: %d keys", len(keys))
			}
			if name == "templated with rare phrases" {
				// About 23 such lines, within the 64 the file holds: every
				// phrase's number is listed, and no common word.
				for i := range logs {
					if n, ok := strings.CutPrefix(logs[i].Message, "card declined: fraud rule R-"); ok && !listed["W"+n] {
						t.Fatalf("the rare number %s is not listed: %v", n, keys)
					}
				}
				if listed["Wcharge"] {
					t.Fatal("a common word is listed")
				}
			}
		})
	}
}

// FuzzDecodeNeedles: no needle file, however damaged, panics the reader;
// one it accepts reads as a block.
func FuzzDecodeNeedles(f *testing.F) {
	logs := []Log{{Time: t0, Service: "s", Message: "card declined: fraud rule R-0007"}, {Time: t0.Add(time.Second), Service: "t", Message: "R-0007 again"}}
	good, err := encodeNeedles(logs, []int{0, 1}, []string{"P0007", "Wrule"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PAVENDL1\xff\xff\xff\xff"))
	seed := maphash.MakeSeed()
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeNeedles(b, seed)
		if err != nil {
			return
		}
		decodeLogRowsWhere(strings.NewReader(string(b[x.off:])), x.meta, "", nil)
	})
}

// Phrase searches running while partitions move to the cold tier (files
// built and served) and expire (files removed), and while cache fills
// rebuild files, neither fail nor race (go test -race), and once the
// store is still every answer is a full scan's.
func TestNeedleFilesUnderConcurrentMovesAndExpiry(t *testing.T) {
	f := newNeedleFixture(t, DirBlob{Root: t.TempDir()}, false)
	ctx := context.Background()
	// More lines, an hour later, still hot.
	r := rand.New(rand.NewPCG(12, 120))
	more := randomLogs(r, 4000)
	for i := range more {
		more[i].Time = more[i].Time.Add(3 * time.Hour)
		more[i].Message = "cache miss"
	}
	more[1234].Message = f.rare[2]
	if err := f.s.AppendLogs(ctx, more); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(8 * time.Hour)
	f.s.o.DefaultRetention = 5 * time.Hour // the first partitions expire
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := 0; w < 3; w++ {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				res, err := f.s.Query(ctx, Query{Contains: f.rare[i%len(f.rare)], Limit: 100})
				if err == nil && len(res.Warnings) > 0 {
					err = fmt.Errorf("warnings: %v", res.Warnings)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	if err := f.s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.s.expireCold(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	for w := 0; w < 3; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	f.s.cacheWG.Wait()
	res, err := f.s.Query(ctx, Query{Contains: f.rare[2], Limit: 100})
	if err != nil || len(res.Logs) != 1 || res.Logs[0].Message != f.rare[2] {
		t.Fatalf("%q after the moves and expiry: %d lines, %v; want the one line of the later partition", f.rare[2], len(res.Logs), err)
	}
	if st := f.s.Stats(); st.HotBlocks != 0 || st.NeedleBytes == 0 {
		t.Fatalf("after the moves and expiry: %+v; want every block cold and the later block's needle file", st)
	}
}
