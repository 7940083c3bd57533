package tracer

// hwState is what vtrace knows about x86 debug-register watchpoints on this
// machine. Some hypervisors accept DR0–DR7 writes but never deliver the
// trap, so vtrace never depends on them.
type hwState int

const (
	hwAuto hwState = iota // not probed yet: use when a probe shows they fire
	hwOff                 // disabled by the user
	hwWorks
	hwBroken
)

func (h hwState) String() string {
	switch h {
	case hwOff:
		return "off"
	case hwWorks:
		return "hw"
	case hwBroken:
		return "none"
	}
	return "auto"
}
