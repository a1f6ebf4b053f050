// Command go-verify cross-checks auditlog's transparency log with Go's reference
// implementation, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog (from Debian's
// golang-golang-x-mod-dev). It is built and driven by tests/merkle_go.rs.
//
// It reads one JSON request on stdin and writes one JSON answer on stdout.
//
//	{"op": "check", ...}  verifies what auditlog made: its signed checkpoint (note.Open with
//	                      the verifier key), its inclusion proofs (tlog.CheckRecord), its
//	                      consistency proofs (tlog.CheckTree), and reads its tiles through
//	                      tlog.TileHashReader (which authenticates every tile against the
//	                      checkpoint's root) to recompute the root and the proofs.
//	{"op": "cosig", ...}  checks a checkpoint auditlog's witness cosigned (C2SP
//	                      tlog-cosignature, cosignature/v1): note.Open with only the log's
//	                      key must still verify it (the cosignature is an unknown signature),
//	                      and note.Open with a cosignature/v1 verifier written here from the
//	                      spec (crypto/ed25519) must verify the cosignature; then it cosigns
//	                      the checkpoint with a fresh Go witness key (a note.Signer) for
//	                      auditlog to verify.
//	{"op": "note", ...}   opens a signed note (an auditlog key rotation statement) with
//	                      note.Open and the given verifier keys, and parses the verifier
//	                      keys its text lines hold with note.NewVerifier.
//	{"op": "make", ...}   builds a tree of the given leaves with tlog, signs checkpoints with
//	                      a fresh note key and writes proofs in auditlog's JSON proof format,
//	                      for auditlog's verifier to check.
//
// Leaves are auditlog's: leaf bytes = le64(seq) || le64(timestamp_ns) || digest, and the leaf
// hash is tlog.RecordHash of them (SHA-256(0x00 || bytes)), computed here independently.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// inclusionProof is auditlog's JSON inclusion proof (src/transparency.rs InclusionProof).
type inclusionProof struct {
	Kind        string   `json:"kind"`
	LeafIndex   int64    `json:"leaf_index"`
	TreeSize    int64    `json:"tree_size"`
	TimestampNs int64    `json:"timestamp_ns"`
	Digest      string   `json:"digest"`
	EventID     *string  `json:"event_id,omitempty"`
	LeafHash    string   `json:"leaf_hash"`
	Hashes      []string `json:"hashes"`
	Root        string   `json:"root"`
	Checkpoint  string   `json:"checkpoint,omitempty"`
}

// consistencyProof is auditlog's JSON consistency proof.
type consistencyProof struct {
	Kind       string   `json:"kind"`
	OldSize    int64    `json:"old_size"`
	NewSize    int64    `json:"new_size"`
	OldRoot    string   `json:"old_root"`
	NewRoot    string   `json:"new_root"`
	Hashes     []string `json:"hashes"`
	Checkpoint string   `json:"checkpoint,omitempty"`
}

type leaf struct {
	TimestampNs int64  `json:"timestamp_ns"`
	Digest      string `json:"digest"`
}

type request struct {
	Op string `json:"op"`
	// check
	VerifierKey string             `json:"vkey"`
	Checkpoint  string             `json:"checkpoint"`
	Tiles       string             `json:"tiles"`
	Inclusion   []inclusionProof   `json:"inclusion"`
	Consistency []consistencyProof `json:"consistency"`
	// Offline receipts in the c2sp.org/tlog-proof@v1 text format.
	Receipts []string `json:"receipts"`
	// cosig
	Cosigned    string `json:"cosigned"`
	WitnessVkey string `json:"witness_vkey"`
	CosignTime  uint64 `json:"cosign_time"`
	// note
	Note  string   `json:"note"`
	Vkeys []string `json:"vkeys"`
	// make
	Name         string     `json:"name"`
	Leaves       []leaf     `json:"leaves"`
	ProveRecords [][2]int64 `json:"prove_records"` // [index, size]
	ProveTrees   [][2]int64 `json:"prove_trees"`   // [old, new]
}

type checked struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	Root   string `json:"root"`
}

type checkAnswer struct {
	Checkpoint      *checked `json:"checkpoint,omitempty"`
	CheckpointError string   `json:"checkpoint_error,omitempty"`
	// "ok" or the error, one per proof of the request.
	Inclusion   []string `json:"inclusion"`
	Consistency []string `json:"consistency"`
	Receipts    []string `json:"receipts"`
	// From the tiles, for the checkpoint's tree: its root, and for every inclusion proof
	// against that tree whether tlog.ProveRecord over the tiles gives the same hashes.
	TileRoot        string   `json:"tile_root,omitempty"`
	TileError       string   `json:"tile_error,omitempty"`
	TileProofsEqual []string `json:"tile_proofs_equal"`
}

type makeAnswer struct {
	VerifierKey string           `json:"vkey"`
	Inclusion   []inclusionProof `json:"inclusion"`
	// One c2sp.org/tlog-proof@v1 receipt per inclusion proof, written here from the spec.
	Receipts    []string           `json:"receipts"`
	Consistency []consistencyProof `json:"consistency"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-verify: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	var req request
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail("reading the request: %v", err)
	}
	var out interface{}
	switch req.Op {
	case "check":
		out = check(&req)
	case "cosig":
		out = cosig(&req)
	case "note":
		out = openNote(&req)
	case "make":
		a, err := makeProofs(&req)
		if err != nil {
			fail("make: %v", err)
		}
		out = a
	default:
		fail("unknown op %q", req.Op)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail("writing the answer: %v", err)
	}
}

func leafBytes(seq, ts int64, digestHex string) ([]byte, error) {
	d, err := hex.DecodeString(digestHex)
	if err != nil || len(d) != 32 {
		return nil, fmt.Errorf("digest %q is not 64 hex digits", digestHex)
	}
	b := make([]byte, 16, 48)
	binary.LittleEndian.PutUint64(b[0:8], uint64(seq))
	binary.LittleEndian.PutUint64(b[8:16], uint64(ts))
	return append(b, d...), nil
}

func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, fmt.Errorf("%q is not base64 of a 32-byte hash", s)
	}
	copy(h[:], b)
	return h, nil
}

func parseHashes(v []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(v))
	for i, s := range v {
		h, err := parseHash(s)
		if err != nil {
			return nil, fmt.Errorf("hashes[%d]: %v", i, err)
		}
		out[i] = h
	}
	return out, nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// openCheckpoint verifies a signed checkpoint with note.Open and parses its body as C2SP
// tlog-checkpoint text (origin, decimal size, base64 root), the origin being the key's name.
func openCheckpoint(signed string, verifiers note.Verifiers, origin string) (tlog.Tree, error) {
	n, err := note.Open([]byte(signed), verifiers)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("note.Open: %v", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return tlog.Tree{}, errors.New("checkpoint body has fewer than three lines")
	}
	if lines[0] != origin {
		return tlog.Tree{}, fmt.Errorf("checkpoint origin %q is not %q", lines[0], origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return tlog.Tree{}, fmt.Errorf("checkpoint size %q is not decimal", lines[1])
	}
	root, err := parseHash(lines[2])
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("checkpoint root: %v", err)
	}
	return tlog.Tree{N: size, Hash: root}, nil
}

func checkInclusion(p *inclusionProof, verifiers note.Verifiers, origin string) error {
	if p.Kind != "inclusion" {
		return fmt.Errorf("kind %q", p.Kind)
	}
	tree, err := openCheckpoint(p.Checkpoint, verifiers, origin)
	if err != nil {
		return err
	}
	if tree.N != p.TreeSize {
		return fmt.Errorf("proof for size %d, checkpoint of size %d", p.TreeSize, tree.N)
	}
	lb, err := leafBytes(p.LeafIndex, p.TimestampNs, p.Digest)
	if err != nil {
		return err
	}
	h := tlog.RecordHash(lb)
	if b64(h) != p.LeafHash {
		return errors.New("leaf_hash is not tlog.RecordHash of the leaf bytes")
	}
	hashes, err := parseHashes(p.Hashes)
	if err != nil {
		return err
	}
	return tlog.CheckRecord(hashes, tree.N, tree.Hash, p.LeafIndex, h)
}

func checkConsistency(p *consistencyProof, verifiers note.Verifiers, origin string) error {
	if p.Kind != "consistency" {
		return fmt.Errorf("kind %q", p.Kind)
	}
	tree, err := openCheckpoint(p.Checkpoint, verifiers, origin)
	if err != nil {
		return err
	}
	if tree.N != p.NewSize {
		return fmt.Errorf("proof to size %d, checkpoint of size %d", p.NewSize, tree.N)
	}
	old, err := parseHash(p.OldRoot)
	if err != nil {
		return fmt.Errorf("old_root: %v", err)
	}
	hashes, err := parseHashes(p.Hashes)
	if err != nil {
		return err
	}
	return tlog.CheckTree(hashes, tree.N, tree.Hash, p.OldSize, old)
}

// checkReceipt parses a c2sp.org/tlog-proof@v1 receipt written from the spec (header line,
// optional "extra <base64>", "index <N>", base64 path hashes, an empty line, the signed
// checkpoint), opens the checkpoint and checks the path with tlog.CheckRecord, the leaf
// being tlog.RecordHash of the extra bytes, whose first 8 bytes (le64 seq) must be the index.
func checkReceipt(text string, verifiers note.Verifiers, origin string) error {
	head, cp, ok := strings.Cut(text, "\n\n")
	if !ok {
		return errors.New("receipt: no empty line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return fmt.Errorf("receipt: first line %q", lines[0])
	}
	lines = lines[1:]
	var extra []byte
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		var err error
		if extra, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "extra ")); err != nil {
			return fmt.Errorf("receipt: extra: %v", err)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return errors.New("receipt: no index line")
	}
	is := strings.TrimPrefix(lines[0], "index ")
	index, err := strconv.ParseInt(is, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != is {
		return fmt.Errorf("receipt: index %q", is)
	}
	hashes, err := parseHashes(lines[1:])
	if err != nil {
		return fmt.Errorf("receipt: %v", err)
	}
	tree, err := openCheckpoint(cp, verifiers, origin)
	if err != nil {
		return err
	}
	if len(extra) != 48 || int64(binary.LittleEndian.Uint64(extra[:8])) != index {
		return errors.New("receipt: extra is not the 48 leaf bytes of the record at index")
	}
	return tlog.CheckRecord(hashes, tree.N, tree.Hash, index, tlog.RecordHash(extra))
}

// tileDir reads auditlog's tiles: tlog names a tile tile/<H>/<L>/<N>[.p/<W>] with the height
// H (8 here) in the path, C2SP tlog-tiles and auditlog write tile/<L>/<N>[.p/<W>].
type tileDir struct{ root string }

func (tileDir) Height() int { return 8 }

func (d tileDir) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := t.Path()
		prefix := fmt.Sprintf("tile/%d/", t.H)
		if !strings.HasPrefix(p, prefix) {
			return nil, fmt.Errorf("unexpected tile path %q", p)
		}
		ours := filepath.Join(d.root, "tile", strings.TrimPrefix(p, prefix))
		data, err := os.ReadFile(ours)
		if err != nil {
			return nil, err
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", ours, len(data), t.W*tlog.HashSize)
		}
		out[i] = data
	}
	return out, nil
}

func (tileDir) SaveTiles([]tlog.Tile, [][]byte) {}

func check(req *request) *checkAnswer {
	ans := &checkAnswer{Inclusion: []string{}, Consistency: []string{}, Receipts: []string{}, TileProofsEqual: []string{}}
	v, err := note.NewVerifier(req.VerifierKey)
	if err != nil {
		fail("note.NewVerifier(%q): %v", req.VerifierKey, err)
	}
	verifiers := note.VerifierList(v)
	result := func(err error) string {
		if err != nil {
			return err.Error()
		}
		return "ok"
	}
	for i := range req.Inclusion {
		ans.Inclusion = append(ans.Inclusion, result(checkInclusion(&req.Inclusion[i], verifiers, v.Name())))
	}
	for i := range req.Consistency {
		ans.Consistency = append(ans.Consistency, result(checkConsistency(&req.Consistency[i], verifiers, v.Name())))
	}
	for _, r := range req.Receipts {
		ans.Receipts = append(ans.Receipts, result(checkReceipt(r, verifiers, v.Name())))
	}
	if req.Checkpoint == "" {
		return ans
	}
	tree, err := openCheckpoint(req.Checkpoint, verifiers, v.Name())
	if err != nil {
		ans.CheckpointError = err.Error()
		return ans
	}
	ans.Checkpoint = &checked{Origin: v.Name(), Size: tree.N, Root: b64(tree.Hash)}
	if req.Tiles == "" {
		return ans
	}
	hr := tlog.TileHashReader(tree, tileDir{req.Tiles})
	root, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		ans.TileError = err.Error()
		return ans
	}
	ans.TileRoot = b64(root)
	for _, p := range req.Inclusion {
		if p.TreeSize != tree.N {
			continue
		}
		rp, err := tlog.ProveRecord(tree.N, p.LeafIndex, hr)
		if err != nil {
			ans.TileProofsEqual = append(ans.TileProofsEqual, err.Error())
			continue
		}
		same := len(rp) == len(p.Hashes)
		for j := 0; same && j < len(rp); j++ {
			same = b64(rp[j]) == p.Hashes[j]
		}
		if same {
			ans.TileProofsEqual = append(ans.TileProofsEqual, "ok")
		} else {
			ans.TileProofsEqual = append(ans.TileProofsEqual, fmt.Sprintf("leaf %d: tlog.ProveRecord over the tiles differs", p.LeafIndex))
		}
	}
	return ans
}

// memStore keeps tlog's stored hashes (tlog.StoredHashIndex order) in memory.
type memStore []tlog.Hash

func (s *memStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*s)) {
			return nil, fmt.Errorf("stored hash %d not present (%d stored)", x, len(*s))
		}
		out[i] = (*s)[x]
	}
	return out, nil
}

func makeProofs(req *request) (*makeAnswer, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, req.Name)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	store := &memStore{}
	for i, l := range req.Leaves {
		lb, err := leafBytes(int64(i), l.TimestampNs, l.Digest)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %v", i, err)
		}
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.RecordHash(lb), store)
		if err != nil {
			return nil, err
		}
		*store = append(*store, hs...)
	}
	cps := map[int64]string{}
	roots := map[int64]tlog.Hash{}
	treeAt := func(n int64) (tlog.Hash, string, error) {
		if c, ok := cps[n]; ok {
			return roots[n], c, nil
		}
		root, err := tlog.TreeHash(n, store)
		if err != nil {
			return root, "", err
		}
		text := fmt.Sprintf("%s\n%d\n%s\n", req.Name, n, b64(root))
		signed, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			return root, "", err
		}
		roots[n], cps[n] = root, string(signed)
		return root, string(signed), nil
	}
	ans := &makeAnswer{VerifierKey: vkey, Inclusion: []inclusionProof{}, Receipts: []string{}, Consistency: []consistencyProof{}}
	for _, q := range req.ProveRecords {
		idx, size := q[0], q[1]
		if idx < 0 || idx >= int64(len(req.Leaves)) {
			return nil, fmt.Errorf("no leaf %d", idx)
		}
		root, cp, err := treeAt(size)
		if err != nil {
			return nil, err
		}
		rp, err := tlog.ProveRecord(size, idx, store)
		if err != nil {
			return nil, err
		}
		l := req.Leaves[idx]
		lb, _ := leafBytes(idx, l.TimestampNs, l.Digest)
		p := inclusionProof{
			Kind: "inclusion", LeafIndex: idx, TreeSize: size, TimestampNs: l.TimestampNs,
			Digest: l.Digest, LeafHash: b64(tlog.RecordHash(lb)), Hashes: []string{},
			Root: b64(root), Checkpoint: cp,
		}
		var rb strings.Builder
		fmt.Fprintf(&rb, "c2sp.org/tlog-proof@v1\nextra %s\nindex %d\n", base64.StdEncoding.EncodeToString(lb), idx)
		for _, h := range rp {
			p.Hashes = append(p.Hashes, b64(h))
			rb.WriteString(b64(h) + "\n")
		}
		rb.WriteString("\n" + cp)
		ans.Inclusion = append(ans.Inclusion, p)
		ans.Receipts = append(ans.Receipts, rb.String())
	}
	for _, q := range req.ProveTrees {
		old, size := q[0], q[1]
		oldRoot, err := tlog.TreeHash(old, store)
		if err != nil {
			return nil, err
		}
		root, cp, err := treeAt(size)
		if err != nil {
			return nil, err
		}
		tp, err := tlog.ProveTree(size, old, store)
		if err != nil {
			return nil, err
		}
		p := consistencyProof{
			Kind: "consistency", OldSize: old, NewSize: size, OldRoot: b64(oldRoot),
			NewRoot: b64(root), Hashes: []string{}, Checkpoint: cp,
		}
		for _, h := range tp {
			p.Hashes = append(p.Hashes, b64(h))
		}
		ans.Consistency = append(ans.Consistency, p)
	}
	return ans, nil
}

// cosignatureVerifier checks C2SP tlog-cosignature v1 signatures: the signature is an 8-byte
// big-endian timestamp followed by the Ed25519 signature of
// "cosignature/v1\ntime <timestamp>\n" || the note text; the key hash uses type byte 0x04.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
	// The timestamp of the last signature that verified.
	seen uint64
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > math.MaxInt64 {
		return false
	}
	if !ed25519.Verify(v.key, cosignatureMessage(t, msg), sig[8:]) {
		return false
	}
	v.seen = t
	return true
}

func cosignatureMessage(t uint64, text []byte) []byte {
	return append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), text...)
}

func cosignatureKeyHash(name string, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', 0x04})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil)[:4])
}

// parseCosignatureVkey parses "<name>+<hex key hash>+<base64(0x04 || 32-byte key)>".
func parseCosignatureVkey(s string) (*cosignatureVerifier, error) {
	parts := strings.SplitN(s, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("vkey %q is not name+hash+key", s)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	if len(raw) != 33 || raw[0] != 0x04 {
		return nil, fmt.Errorf("vkey %q is not a cosignature/v1 (0x04) Ed25519 key", s)
	}
	id, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || len(parts[1]) != 8 {
		return nil, fmt.Errorf("vkey key hash %q", parts[1])
	}
	h := cosignatureKeyHash(parts[0], raw[1:])
	if uint32(id) != h {
		return nil, fmt.Errorf("vkey key hash %08x, computed %08x", id, h)
	}
	return &cosignatureVerifier{name: parts[0], hash: h, key: ed25519.PublicKey(raw[1:])}, nil
}

type cosignatureSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	t    uint64
}

func (s *cosignatureSigner) Name() string    { return s.name }
func (s *cosignatureSigner) KeyHash() uint32 { return s.hash }
func (s *cosignatureSigner) Sign(msg []byte) ([]byte, error) {
	out := make([]byte, 8, 8+ed25519.SignatureSize)
	binary.BigEndian.PutUint64(out, s.t)
	return append(out, ed25519.Sign(s.key, cosignatureMessage(s.t, msg))...), nil
}

type cosigAnswer struct {
	// note.Open with only the log's verifier key: "ok" or the error.
	LogOnly string `json:"log_only"`
	// The cosignature lines Open left unverified (with only the log key).
	Unverified int `json:"unverified"`
	// note.Open with the log key and the cosignature verifier: "ok" or the error.
	Cosig     string `json:"cosig"`
	Timestamp uint64 `json:"timestamp"`
	// A cosignature by a fresh Go witness key, and that key as a vkey.
	GoVkey string `json:"go_vkey"`
	GoLine string `json:"go_line"`
}

func cosig(req *request) *cosigAnswer {
	a := &cosigAnswer{}
	logV, err := note.NewVerifier(req.VerifierKey)
	if err != nil {
		fail("log vkey: %v", err)
	}
	if n, err := note.Open([]byte(req.Cosigned), note.VerifierList(logV)); err != nil {
		a.LogOnly = err.Error()
	} else {
		a.LogOnly = "ok"
		a.Unverified = len(n.UnverifiedSigs)
	}
	cv, err := parseCosignatureVkey(req.WitnessVkey)
	if err != nil {
		a.Cosig = err.Error()
	} else if n, err := note.Open([]byte(req.Cosigned), note.VerifierList(logV, cv)); err != nil {
		a.Cosig = err.Error()
	} else {
		found := false
		for _, s := range n.Sigs {
			if s.Name == cv.name && s.Hash == cv.hash {
				found = true
			}
		}
		if found {
			a.Cosig = "ok"
			a.Timestamp = cv.seen
		} else {
			a.Cosig = "the cosignature is not among the verified signatures"
		}
	}
	// Go cosigns the checkpoint text.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fail("key: %v", err)
	}
	name := "go.example/witness"
	signer := &cosignatureSigner{name: name, hash: cosignatureKeyHash(name, pub), key: priv, t: req.CosignTime}
	n, err := note.Open([]byte(req.Cosigned), note.VerifierList(logV))
	if err != nil {
		fail("open: %v", err)
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, signer)
	if err != nil {
		fail("sign: %v", err)
	}
	_, sigs, _ := strings.Cut(string(signed), "\n\n")
	a.GoLine = sigs
	a.GoVkey = fmt.Sprintf("%s+%08x+%s", name, signer.hash, base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
	return a
}

type noteAnswer struct {
	// "ok" or note.Open's error.
	Open string `json:"open"`
	// The verified signatures, as "name+hash" (hex).
	Verified []string `json:"verified"`
	// For each text line after the first: "ok" if it parses as a note verifier key.
	KeyLines []string `json:"key_lines"`
}

func openNote(req *request) *noteAnswer {
	a := &noteAnswer{Verified: []string{}, KeyLines: []string{}}
	var vs []note.Verifier
	for _, k := range req.Vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			fail("vkey %q: %v", k, err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open([]byte(req.Note), note.VerifierList(vs...))
	if err != nil {
		a.Open = err.Error()
		return a
	}
	a.Open = "ok"
	for _, s := range n.Sigs {
		a.Verified = append(a.Verified, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	for _, l := range lines[1:] {
		if _, err := note.NewVerifier(l); err != nil {
			a.KeyLines = append(a.KeyLines, err.Error())
		} else {
			a.KeyLines = append(a.KeyLines, "ok")
		}
	}
	return a
}
