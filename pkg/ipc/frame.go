package ipc

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

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

// keepBuf is the largest buffer a pool keeps; a call that needed more
// (a snapshot chunk, a big value) leaves its buffer to the collector.
const keepBuf = 64 << 10

// encoder is a reusable msgpack encoder writing into buf. Building a
// go-msgpack encoder is costly, and every call encodes several values.
type encoder struct {
	buf []byte
	enc *codec.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{buf: make([]byte, 0, 512)}
	e.enc = codec.NewEncoderBytes(&e.buf, handle)
	return e
}}

// appendEncoded appends v's msgpack encoding to dst.
func appendEncoded(dst []byte, v any) ([]byte, error) {
	e := encoders.Get().(*encoder)
	e.buf = e.buf[:0]
	e.enc.ResetBytes(&e.buf)
	err := e.enc.Encode(v)
	if err == nil {
		dst = append(dst, e.buf...)
	}
	if cap(e.buf) > keepBuf {
		e.buf = make([]byte, 0, 512)
	}
	encoders.Put(e)
	return dst, err
}

var decoders = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, handle) }}

// noBytes resets a pooled decoder so it keeps no reference to the last
// input (ResetBytes ignores nil).
var noBytes = []byte{}

// Marshal encodes v as msgpack with the protocol's handle.
func Marshal(v any) ([]byte, error) {
	return appendEncoded(nil, v)
}

// Unmarshal decodes msgpack into v with the protocol's handle.
func Unmarshal(b []byte, v any) error {
	if b == nil {
		b = noBytes
	}
	d := decoders.Get().(*codec.Decoder)
	d.ResetBytes(b)
	err := d.Decode(v)
	d.ResetBytes(noBytes)
	decoders.Put(d)
	return err
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

// frameWriter writes length-prefixed frames. Frames collect in memory
// and flush writes them with one Write, so a whole message (header and
// body) leaves as one yamux data frame: one system call, one wakeup of
// the reader. Not safe for concurrent use.
type frameWriter struct {
	w   io.Writer
	max int
	buf []byte  // frames not yet flushed; nil after release
	pb  *[]byte // the pooled slice buf came from
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func newFrameWriter(w io.Writer, max int) *frameWriter {
	pb := writeBufs.Get().(*[]byte)
	return &frameWriter{w: w, max: max, buf: (*pb)[:0], pb: pb}
}

// writeValue encodes v as one frame. It does not flush.
func (f *frameWriter) writeValue(v any) error {
	start := len(f.buf)
	buf, err := appendEncoded(append(f.buf, 0, 0, 0, 0), v)
	if err != nil {
		f.buf = buf[:start]
		return fmt.Errorf("encode: %w", err)
	}
	n := len(buf) - start - 4
	if n > f.max {
		f.buf = buf[:start]
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, f.max)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(n))
	f.buf = buf
	return nil
}

func (f *frameWriter) writeFrame(b []byte) error {
	if len(b) > f.max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(b), f.max)
	}
	f.buf = binary.BigEndian.AppendUint32(f.buf, uint32(len(b)))
	f.buf = append(f.buf, b...)
	return nil
}

// flush writes the frames collected so far.
func (f *frameWriter) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.w.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

// release returns the buffer to the pool; f must not be used afterwards.
func (f *frameWriter) release() {
	if f.buf == nil {
		return
	}
	if cap(f.buf) <= keepBuf {
		*f.pb = f.buf[:0]
		writeBufs.Put(f.pb)
	}
	f.buf, f.pb = nil, nil
}

// frameReader reads length-prefixed frames. It reads straight from the
// stream: a yamux stream already buffers what arrived, so a bufio layer
// would only add a copy and an allocation per call.
type frameReader struct {
	r   io.Reader
	max int
	hdr [4]byte
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: r, max: max}
}

// readFrame returns the next frame's bytes. A frame larger than the limit is
// refused before its body is read or allocated.
func (f *frameReader) readFrame() ([]byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(f.hdr[:])
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
