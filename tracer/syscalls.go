package tracer

import "github.com/vtrace/vtrace/tracer/internal/arch"

// sysNames names, per ABI, the system calls the engine looks for by their
// number at a stop: the vfork family (capture.go), the calls that may set
// up a SIGTRAP for later (child.go: asyncTrapCall), the timed sleeps and
// the waits for input (giveway.go: readsFed). Each ABI numbers them its own way (amd64's
// 259 is mknodat, i386's timer_create). The calls whose buffers the kernel
// fills or reads have their own tables, with their arguments
// (kernelwrites.go).
var sysNames = map[*arch.Arch]map[uint64]string{
	arch.AMD64: {58: "vfork", 56: "clone", 435: "clone3",
		298: "perf_event_open", 222: "timer_create", 244: "mq_notify", 72: "fcntl",
		35: "nanosleep", 230: "clock_nanosleep",
		0: "read", 19: "readv", 17: "pread64", 295: "preadv", 327: "preadv2",
		45: "recvfrom", 47: "recvmsg", 299: "recvmmsg", 43: "accept", 288: "accept4",
		7: "poll", 271: "ppoll", 23: "select", 270: "pselect6",
		232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2"},
	arch.I386: {190: "vfork", 120: "clone", 435: "clone3",
		336: "perf_event_open", 259: "timer_create", 281: "mq_notify", 55: "fcntl", 221: "fcntl64",
		162: "nanosleep", 267: "clock_nanosleep", 407: "clock_nanosleep_time64",
		3: "read", 145: "readv", 180: "pread64", 333: "preadv", 378: "preadv2",
		371: "recvfrom", 372: "recvmsg", 337: "recvmmsg", 417: "recvmmsg_time64", 364: "accept4", 102: "socketcall",
		168: "poll", 309: "ppoll", 414: "ppoll_time64", 142: "_newselect", 308: "pselect6", 413: "pselect6_time64",
		256: "epoll_wait", 319: "epoll_pwait", 441: "epoll_pwait2"},
}

// sysName is the name of system call nr in a's ABI: "" for one the engine
// does not look for (or no ABI).
func sysName(a *arch.Arch, nr uint64) string { return sysNames[a][nr] }
