package healthd

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// h2pingCheck opens an HTTP/2 connection (TLS with H2PingUseTLS, else h2c
// with prior knowledge) and sends a PING frame: the PING ACK is passing.
// Outputs are Consul's ("HTTP2 ping was successful", "HTTP2 ping failed:
// …", "Failed to dial to …"). healthd speaks the few frames involved
// itself (RFC 9113 §3.4, §6.5, §6.7): net/http exposes no ping, and
// golang.org/x/net/http2 is not among the module's dependencies.
type h2pingCheck struct {
	addr    string
	tls     *tls.Config // nil: h2c
	timeout time.Duration
}

func newH2PingCheck(t *structs.CheckType, timeout time.Duration) *h2pingCheck {
	c := &h2pingCheck{addr: t.H2PING, timeout: timeout}
	if t.H2PingUseTLS {
		c.tls = &tls.Config{InsecureSkipVerify: t.TLSSkipVerify, ServerName: t.TLSServerName, NextProtos: []string{"h2"}}
	}
	return c
}

func (h *h2pingCheck) run(ctx context.Context) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	nd := &net.Dialer{}
	var conn net.Conn
	var err error
	if h.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: h.tls}).DialContext(ctx, "tcp", h.addr)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", h.addr)
	}
	if err != nil {
		return structs.HealthCritical, fmt.Sprintf("Failed to dial to %s: %s", h.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var data [8]byte
	rand.Read(data[:])
	if err := h2Ping(conn, data); err != nil {
		var setup *h2SetupError
		if errors.As(err, &setup) {
			return structs.HealthCritical, fmt.Sprintf("Failed to create client connection %s", setup.err)
		}
		return structs.HealthCritical, fmt.Sprintf("HTTP2 ping failed: %s", err)
	}
	return structs.HealthPassing, "HTTP2 ping was successful"
}

// HTTP/2 frame types and flags used by the ping.
const (
	h2FrameSettings = 0x4
	h2FramePing     = 0x6
	h2FrameGoAway   = 0x7
	h2FlagAck       = 0x1
	h2HeaderLen     = 9
	// h2MaxFrame is SETTINGS_MAX_FRAME_SIZE's initial value; a peer may
	// not send more before we raise it, which we never do.
	h2MaxFrame = 16384
)

// h2Preface is the client connection preface.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2SetupError is a failure to send the connection preface.
type h2SetupError struct{ err error }

func (e *h2SetupError) Error() string { return e.err.Error() }

// h2Frame is one received frame.
type h2Frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

// readH2Frame reads one frame, refusing payloads over h2MaxFrame.
func readH2Frame(r io.Reader, buf []byte) (h2Frame, error) {
	var hdr [h2HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return h2Frame{}, err
	}
	n := uint32(hdr[0])<<16 | uint32(hdr[1])<<8 | uint32(hdr[2])
	if n > h2MaxFrame {
		return h2Frame{}, fmt.Errorf("frame of %d bytes exceeds the maximum frame size %d", n, h2MaxFrame)
	}
	f := h2Frame{typ: hdr[3], flags: hdr[4], stream: binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff}
	f.payload = buf[:n]
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return h2Frame{}, err
	}
	return f, nil
}

// appendH2Frame appends a frame to b.
func appendH2Frame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

// h2Ping runs the client side of a connection up to the ACK of a PING
// carrying data: preface and empty SETTINGS, then frames are read,
// answering the server's SETTINGS and PINGs, until the ACK or a GOAWAY.
// It returns nil on the ACK, after a polite GOAWAY.
func h2Ping(rw io.ReadWriter, data [8]byte) error {
	out := []byte(h2Preface)
	out = appendH2Frame(out, h2FrameSettings, 0, 0, nil)
	out = appendH2Frame(out, h2FramePing, 0, 0, data[:])
	if _, err := rw.Write(out); err != nil {
		return &h2SetupError{err}
	}
	br := bufio.NewReader(rw)
	if p, _ := br.Peek(5); string(p) == "HTTP/" {
		return errors.New("the server answered in HTTP/1 and does not speak HTTP/2 here")
	}
	buf := make([]byte, h2MaxFrame)
	for {
		f, err := readH2Frame(br, buf)
		if err != nil {
			return err
		}
		switch f.typ {
		case h2FrameSettings:
			if f.stream != 0 || len(f.payload)%6 != 0 {
				return errors.New("malformed SETTINGS frame")
			}
			if f.flags&h2FlagAck == 0 {
				if _, err := rw.Write(appendH2Frame(nil, h2FrameSettings, h2FlagAck, 0, nil)); err != nil {
					return err
				}
			}
		case h2FramePing:
			if f.stream != 0 || len(f.payload) != 8 {
				return errors.New("malformed PING frame")
			}
			if f.flags&h2FlagAck == 0 {
				if _, err := rw.Write(appendH2Frame(nil, h2FramePing, h2FlagAck, 0, f.payload)); err != nil {
					return err
				}
				continue
			}
			if [8]byte(f.payload) == data {
				goAway := make([]byte, 8) // last stream 0, NO_ERROR
				rw.Write(appendH2Frame(nil, h2FrameGoAway, 0, 0, goAway))
				return nil
			}
		case h2FrameGoAway:
			if len(f.payload) < 8 {
				return errors.New("malformed GOAWAY frame")
			}
			code := binary.BigEndian.Uint32(f.payload[4:8])
			return fmt.Errorf("server sent GOAWAY with error code %#x: %q", code, f.payload[8:])
		}
	}
}
