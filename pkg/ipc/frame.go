package ipc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// DefaultMaxFrame bounds one frame (header or body): 8 MiB, above the
// largest KV value (512 KiB) and any snapshot chunk.
const DefaultMaxFrame = 8 << 20

var handle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.RawToString = true
	return h
}()

// Marshal encodes v as msgpack with the protocol's handle.
func Marshal(v any) ([]byte, error) {
	var b []byte
	if err := codec.NewEncoderBytes(&b, handle).Encode(v); err != nil {
		return nil, err
	}
	return b, nil
}

// Unmarshal decodes msgpack into v with the protocol's handle.
func Unmarshal(b []byte, v any) error {
	return codec.NewDecoderBytes(b, handle).Decode(v)
}

// Response kinds.
const (
	kindItem   uint8 = 1
	kindResult uint8 = 2
	kindEnd    uint8 = 3
	kindError  uint8 = 4
)

type reqHeader struct {
	Method string `codec:"m"`
}

type respHeader struct {
	Kind    uint8  `codec:"k"`
	Code    string `codec:"c,omitempty"`
	Message string `codec:"e,omitempty"`
}

// frameWriter writes length-prefixed frames.
type frameWriter struct {
	w   *bufio.Writer
	max int
}

func newFrameWriter(w io.Writer, max int) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, 16<<10), max: max}
}

// writeValue encodes v as one frame. It does not flush.
func (f *frameWriter) writeValue(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return f.writeFrame(b)
}

func (f *frameWriter) writeFrame(b []byte) error {
	if len(b) > f.max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(b), f.max)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := f.w.Write(b)
	return err
}

func (f *frameWriter) flush() error { return f.w.Flush() }

// frameReader reads length-prefixed frames.
type frameReader struct {
	r   *bufio.Reader
	max int
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 16<<10), max: max}
}

// readFrame returns the next frame's bytes. A frame larger than the limit is
// refused before its body is read or allocated.
func (f *frameReader) readFrame() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(f.max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, f.max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// readValue reads one frame and decodes it into v.
func (f *frameReader) readValue(v any) error {
	b, err := f.readFrame()
	if err != nil {
		return err
	}
	if err := Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: decode: %v", ErrBadRequest, err)
	}
	return nil
}
