package state

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/consort-io/consort/pkg/structs"
)

// Snapshot image format, version 3:
//
//	magic "CSST"
//	records: kind (1 byte) | payload length (uint32, big endian) | payload
//
// The first record is a header (msgpack snapshotHeader), then index-table
// rows, KV entries, tombstones, nodes, services, checks, sessions, session
// renew times and lock-delays (msgpack each, in key order), then an end
// record whose payload is the CRC-32C of every byte before it. A stream
// without its end record, or with a wrong checksum, is refused. Session
// check mappings and the locks table are not written: Restore rebuilds
// them from the sessions and the KV entries.
// Version 1 (KV only) and 2 (no sessions) images, same layout, are still
// read.
const (
	snapshotMagic      = "CSST"
	snapshotVersion    = 3
	snapshotMinVersion = 1

	recHeader    byte = 1
	recIndex     byte = 2
	recKV        byte = 3
	recTombstone byte = 4
	recNode      byte = 5
	recService   byte = 6
	recCheck     byte = 7
	recSession   byte = 8
	recRenew     byte = 9
	recDelay     byte = 10
	recEnd       byte = 0xff

	// maxRecord bounds one record: far above a KV entry (values are at
	// most 512 KiB), and refused before it is allocated.
	maxRecord = 16 << 20
)

// ErrBadSnapshot is wrapped by Restore's errors about the image itself.
var ErrBadSnapshot = errors.New("bad snapshot")

type snapshotHeader struct {
	Version int    `codec:"version"`
	Index   uint64 `codec:"index"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapHandle encodes snapshot records; its options match ipc's handle.
var snapHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.RawToString = true
	return h
}()

// Snapshot writes an image of the whole state to w and returns the raft
// index it reflects. The image comes from a memdb snapshot taken at once
// (waiting at most for one Apply), so writes continue while it streams.
// It does not close w.
func (s *Store) Snapshot(w io.Writer) (uint64, error) {
	db, idx := s.view()
	sw := &snapshotWriter{w: bufio.NewWriterSize(w, 64<<10), crc: crc32.New(crcTable)}
	sw.enc = codec.NewEncoderBytes(&sw.buf, snapHandle)
	if err := sw.write(db, idx); err != nil {
		return 0, fmt.Errorf("snapshot at index %d: %w", idx, err)
	}
	return idx, nil
}

type snapshotWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	enc *codec.Encoder
	buf []byte
}

func (sw *snapshotWriter) write(db *memdb.MemDB, idx uint64) error {
	if err := sw.raw([]byte(snapshotMagic)); err != nil {
		return err
	}
	if err := sw.record(recHeader, &snapshotHeader{Version: snapshotVersion, Index: idx}); err != nil {
		return err
	}
	tx := db.Txn(false)
	defer tx.Abort()
	for _, t := range []struct {
		table string
		kind  byte
	}{
		{tableIndex, recIndex}, {tableKVs, recKV}, {tableTombstones, recTombstone},
		{tableNodes, recNode}, {tableServices, recService}, {tableChecks, recCheck},
		{tableSessions, recSession}, {tableSessionRenew, recRenew}, {tableLockDelays, recDelay},
	} {
		it, err := tx.Get(t.table, indexID)
		if err != nil {
			return fmt.Errorf("read %s: %w", t.table, err)
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if err := sw.record(t.kind, obj); err != nil {
				return err
			}
		}
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], sw.crc.Sum32())
	if err := sw.frame(recEnd, sum[:]); err != nil {
		return err
	}
	return sw.w.Flush()
}

func (sw *snapshotWriter) record(kind byte, v any) error {
	sw.buf = sw.buf[:0]
	sw.enc.ResetBytes(&sw.buf)
	if err := sw.enc.Encode(v); err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	return sw.frame(kind, sw.buf)
}

func (sw *snapshotWriter) frame(kind byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if err := sw.raw(hdr[:]); err != nil {
		return err
	}
	return sw.raw(payload)
}

func (sw *snapshotWriter) raw(b []byte) error {
	sw.crc.Write(b)
	_, err := sw.w.Write(b)
	return err
}

// Restore replaces the whole state with an image written by Snapshot and
// returns the index it reflects, which becomes LastIndex. It reads the
// image up to its end record (buffering may read past it, so r should hold
// just the image), builds a new database aside
// and swaps it in only when the image is complete and its checksum holds;
// on any error the old state stays. Then it closes the previous AbandonCh,
// waking every blocking query. Applies during a Restore are lost with the
// old state.
func (s *Store) Restore(r io.Reader) (uint64, error) {
	g := newGeneration()
	idx, err := readSnapshot(bufio.NewReaderSize(r, 64<<10), g.db)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	s.mu.Lock()
	old := s.cur.Swap(g)
	s.last.Store(idx)
	s.mu.Unlock()
	close(old.abandon)
	s.names.fireAll()
	return idx, nil
}

func readSnapshot(r io.Reader, db *memdb.MemDB) (uint64, error) {
	crc := crc32.New(crcTable)
	var magic [len(snapshotMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return 0, fmt.Errorf("%w: read magic: %v", ErrBadSnapshot, err)
	}
	if string(magic[:]) != snapshotMagic {
		return 0, fmt.Errorf("%w: not a consort state snapshot", ErrBadSnapshot)
	}
	crc.Write(magic[:])

	tx := db.Txn(true)
	defer tx.Abort()
	dec := codec.NewDecoderBytes(nil, snapHandle)
	var (
		buf    bytes.Buffer
		header *snapshotHeader
	)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return 0, fmt.Errorf("%w: read record: %v", ErrBadSnapshot, noEOF(err))
		}
		kind, n := hdr[0], binary.BigEndian.Uint32(hdr[1:])
		if n > maxRecord {
			return 0, fmt.Errorf("%w: record of %d bytes, limit %d", ErrBadSnapshot, n, maxRecord)
		}
		// Grow with the bytes that actually arrive, not with the length a
		// corrupt header claims.
		buf.Reset()
		if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
			return 0, fmt.Errorf("%w: read record: %v", ErrBadSnapshot, noEOF(err))
		}
		payload := buf.Bytes()
		if kind == recEnd {
			if header == nil {
				return 0, fmt.Errorf("%w: no header", ErrBadSnapshot)
			}
			if n != 4 || binary.BigEndian.Uint32(payload) != crc.Sum32() {
				return 0, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
			}
			tx.Commit()
			return header.Index, nil
		}
		crc.Write(hdr[:])
		crc.Write(payload)

		// Decode into a fresh object each time: the codec may fill an
		// existing byte slice in place, and the previous one is stored.
		var obj any
		switch kind {
		case recHeader:
			obj = new(snapshotHeader)
		case recIndex:
			obj = new(indexEntry)
		case recKV:
			obj = new(structs.KVEntry)
		case recTombstone:
			obj = new(tombstone)
		case recNode:
			obj = new(structs.Node)
		case recService:
			obj = new(serviceEntry)
		case recCheck:
			obj = new(structs.HealthCheck)
		case recSession:
			obj = new(structs.Session)
		case recRenew:
			obj = new(sessionRenew)
		case recDelay:
			obj = new(lockDelay)
		default:
			return 0, fmt.Errorf("%w: unknown record kind %d", ErrBadSnapshot, kind)
		}
		dec.ResetBytes(payload)
		if err := decodeWith(dec, obj); err != nil {
			return 0, fmt.Errorf("%w: decode record kind %d: %v", ErrBadSnapshot, kind, err)
		}
		if (kind == recHeader) != (header == nil) {
			return 0, fmt.Errorf("%w: header must come first, once", ErrBadSnapshot)
		}
		var err error
		switch v := obj.(type) {
		case *snapshotHeader:
			if v.Version < snapshotMinVersion || v.Version > snapshotVersion {
				return 0, fmt.Errorf("%w: version %d, want %d to %d", ErrBadSnapshot, v.Version, snapshotMinVersion, snapshotVersion)
			}
			header = v
		case *indexEntry:
			err = tx.Insert(tableIndex, v)
		case *structs.KVEntry:
			if len(v.Value) == 0 {
				v.Value = nil
			}
			if err = tx.Insert(tableKVs, v); err == nil && v.Session != "" {
				err = tx.Insert(tableKVLocks, &kvLock{Key: v.Key, Session: v.Session})
			}
		case *tombstone:
			err = tx.Insert(tableTombstones, v)
		case *structs.Node:
			err = tx.Insert(tableNodes, v)
		case *serviceEntry:
			err = tx.Insert(tableServices, v)
		case *structs.HealthCheck:
			err = tx.Insert(tableChecks, v)
		case *structs.Session:
			if err = tx.Insert(tableSessions, v); err == nil {
				err = insertSessionChecksTxn(tx, v)
			}
		case *sessionRenew:
			err = tx.Insert(tableSessionRenew, v)
		case *lockDelay:
			err = tx.Insert(tableLockDelays, v)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: insert record kind %d: %v", ErrBadSnapshot, kind, err)
		}
	}
}

func decodeWith(dec *codec.Decoder, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return dec.Decode(v)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
