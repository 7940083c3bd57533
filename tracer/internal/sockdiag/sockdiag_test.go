package sockdiag

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func inode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The kernel's answers for real sockets: the two ends of a socketpair name
// each other, a listening socket and an unbound datagram socket have no
// peer, a pipe's inode is no Unix socket.
func TestUnixByInode(t *testing.T) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[1])
	a, b := inode(t, sp[0]), inode(t, sp[1])
	u, err := UnixByInode(a)
	if err != nil || u.State != Established || u.Peer != b {
		t.Errorf("socketpair end %d: %+v %v, want established, peer %d", a, u, err, b)
	}
	unix.Close(sp[0])
	if u, err := UnixByInode(b); err != nil || u.Peer == a {
		t.Errorf("the other end once %d is closed: %+v %v, want its peer gone", a, u, err)
	}

	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "s")}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 1); err != nil {
		t.Fatal(err)
	}
	if u, err := UnixByInode(inode(t, l)); err != nil || u.State != Listen || u.Peer != 0 {
		t.Errorf("listening socket: %+v %v, want listening, no peer", u, err)
	}

	d, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	if u, err := UnixByInode(inode(t, d)); err != nil || u.State != Close || u.Peer != 0 {
		t.Errorf("unbound datagram socket: %+v %v, want not connected, no peer", u, err)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if u, err := UnixByInode(inode(t, int(r.Fd()))); !errors.Is(err, ErrNotUnix) {
		t.Errorf("a pipe: %+v %v, want ErrNotUnix", u, err)
	}
}

// Malformed replies are errors, never a panic.
func TestParseReplyMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 15), {200, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := parseReply(b, 1); err == nil {
			t.Errorf("%v: no error", b)
		}
	}
}

// Any reply, however malformed, is parsed without a panic, and a parsed
// one is of the inode asked for.
func FuzzParseReply(f *testing.F) {
	f.Add([]byte{36, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 7, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 8, 0, 2, 0, 9, 0, 0, 0}, uint64(7))
	f.Add([]byte{20, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 254, 255, 255, 255}, uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, ino uint64) {
		if _, err := parseReply(b, ino); err == nil && (len(b) < 32 || uint64(b[20])|uint64(b[21])<<8|uint64(b[22])<<16|uint64(b[23])<<24 != ino) {
			t.Errorf("%x parsed as a reply for inode %d", b, ino)
		}
	})
}
