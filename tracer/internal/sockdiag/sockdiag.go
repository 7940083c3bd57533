// Package sockdiag asks the kernel (NETLINK_SOCK_DIAG, unix_diag) about a
// Unix domain socket by its inode: its state and the inode of its peer.
// /proc names a socket's inode (socket:[N]) but not who is at its other
// end; `ss -x` asks this way too.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// From linux/unix_diag.h and linux/sock_diag.h.
const (
	udiagShowPeer = 0x4 // UDIAG_SHOW_PEER
	unixDiagPeer  = 2   // UNIX_DIAG_PEER, an attribute of the reply
	reqLen        = unix.SizeofNlMsghdr + 24
	msgLen        = 16 // struct unix_diag_msg
)

// State is a Unix socket's state, in the kernel's TCP numbering.
type State uint8

const (
	Established State = 1  // connected (a stream or a connected datagram socket)
	Close       State = 7  // not connected
	Listen      State = 10 // listening
)

// Unix is what the kernel says of a Unix domain socket.
type Unix struct {
	State State
	// Peer is the inode of the socket at the other end, 0 when none (not
	// connected, or the peer is closed).
	Peer uint64
}

// ErrNotUnix is the answer for an inode that is no Unix socket the kernel
// knows (another family, or closed).
var ErrNotUnix = errors.New("no such Unix socket")

// UnixByInode asks the kernel about the Unix socket with inode ino.
func UnixByInode(ino uint64) (Unix, error) {
	if ino > 0xffffffff {
		return Unix{}, ErrNotUnix // udiag_ino is 32 bits wide
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return Unix{}, err
	}
	defer unix.Close(fd)
	req := make([]byte, reqLen)
	le := binary.LittleEndian // the host's order: x86 only (vtrace's arches)
	le.PutUint32(req[0:], reqLen)
	le.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	le.PutUint16(req[6:], unix.NLM_F_REQUEST)
	le.PutUint32(req[8:], 1) // seq
	b := req[unix.SizeofNlMsghdr:]
	b[0] = unix.AF_UNIX
	le.PutUint32(b[4:], 0xffffffff) // every state
	le.PutUint32(b[8:], uint32(ino))
	le.PutUint32(b[12:], udiagShowPeer)
	le.PutUint32(b[16:], 0xffffffff) // no cookie: look up by inode
	le.PutUint32(b[20:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Unix{}, err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return Unix{}, err
	}
	return parseReply(buf[:n], ino)
}

// parseReply reads the kernel's answer to the request for inode ino.
func parseReply(buf []byte, ino uint64) (Unix, error) {
	le := binary.LittleEndian
	if len(buf) < unix.SizeofNlMsghdr {
		return Unix{}, fmt.Errorf("sock_diag: a reply of %d bytes", len(buf))
	}
	l, typ := int(le.Uint32(buf[0:])), le.Uint16(buf[4:])
	if l < unix.SizeofNlMsghdr || l > len(buf) {
		return Unix{}, fmt.Errorf("sock_diag: a message of %d bytes in %d", l, len(buf))
	}
	body := buf[unix.SizeofNlMsghdr:l]
	switch typ {
	case unix.NLMSG_ERROR:
		if len(body) < 4 {
			return Unix{}, fmt.Errorf("sock_diag: a short error")
		}
		if e := unix.Errno(-int32(le.Uint32(body))); e == unix.ENOENT {
			return Unix{}, ErrNotUnix
		} else {
			return Unix{}, fmt.Errorf("sock_diag: %w", e)
		}
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return Unix{}, fmt.Errorf("sock_diag: a message of type %d", typ)
	}
	if len(body) < msgLen || body[0] != unix.AF_UNIX || uint64(le.Uint32(body[4:])) != ino {
		return Unix{}, ErrNotUnix
	}
	u := Unix{State: State(body[2])}
	for a := body[msgLen:]; len(a) >= 4; {
		al, at := int(le.Uint16(a[0:])), le.Uint16(a[2:])
		if al < 4 || al > len(a) {
			break
		}
		if at == unixDiagPeer && al >= 8 {
			u.Peer = uint64(le.Uint32(a[4:]))
		}
		a = a[min((al+3)&^3, len(a)):]
	}
	return u, nil
}
