package catalogd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/consort-io/consort/pkg/catalogapi"
)

// snapshotChunk is the most state bytes sent in one SnapshotChunk.
const snapshotChunk = 256 << 10

// Snapshot streams the store's state at an index ≥ req.MinIndex, for
// raftd to write a raft snapshot; it implements catalogapi.Server. It
// waits (at most readWait) for the store to reach MinIndex, else fails
// with catalogapi.ErrBehind. Writes continue while it streams: the store
// snapshots a consistent go-memdb view.
//
// The first chunk carries the applied index read just before the store's
// view was taken. The view may include a few later entries; that is safe
// because the state records its own index and skips entries at or below
// it when the log after the snapshot is replayed. Safe for concurrent use.
func (d *Daemon) Snapshot(ctx context.Context, req *catalogapi.SnapshotRequest, send func(*catalogapi.SnapshotChunk) error) error {
	if err := d.waitApplied(ctx, req.MinIndex); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: snapshot at index %d: %v", catalogapi.ErrBehind, req.MinIndex, err)
	}
	index := d.track.applied()
	if index < req.MinIndex {
		// A restore moved the state back between the wait and now.
		return fmt.Errorf("%w: snapshot at index %d: state is at %d", catalogapi.ErrBehind, req.MinIndex, index)
	}

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var actual uint64
	go func() {
		var err error
		actual, err = d.store.Snapshot(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	err := streamChunks(pr, index, send)
	// Unblock the writer if sending failed, then wait for it.
	pr.CloseWithError(errors.Join(err, errors.New("snapshot stream closed")))
	werr := <-done
	switch {
	case err != nil:
		return fmt.Errorf("stream snapshot at index %d: %w", index, err)
	case werr != nil:
		return fmt.Errorf("snapshot at index %d: %w", index, werr)
	case actual < index:
		// The state was restored to an older snapshot while streaming:
		// what was sent does not reflect the index announced.
		return fmt.Errorf("snapshot at index %d: state was restored to index %d meanwhile; retry", index, actual)
	}
	d.log.Debug("snapshot streamed", "index", index, "state_index", actual)
	return nil
}

// streamChunks sends r's bytes in chunks of at most snapshotChunk, index
// in the first; an empty state still sends one chunk.
func streamChunks(r io.Reader, index uint64, send func(*catalogapi.SnapshotChunk) error) error {
	buf := make([]byte, snapshotChunk)
	first := true
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 || first {
			c := &catalogapi.SnapshotChunk{Data: buf[:n]}
			if first {
				c.Index = index
			}
			// send encodes synchronously, so buf can be reused after it.
			if serr := send(c); serr != nil {
				return serr
			}
			first = false
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil
		case err != nil:
			return err
		}
	}
}
