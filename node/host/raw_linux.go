package host

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data path's system calls, made without telling the Go scheduler
// (syscall.RawSyscall): each one is non-blocking (a non-blocking socket or
// timerfd, MSG_DONTWAIT), and a scheduler-visible call wakes the runtime's
// monitor thread whenever the process was idle, which then polls every
// 20 µs for a millisecond or more: ten thread wake-ups per advert of an
// instance at 10 ms, more than the advert's own work (make bench-cpu).

// rawRecvmsg is unix.Recvmsg(fd, p, oob, flags) for a non-blocking call.
func rawRecvmsg(fd int, p, oob []byte, flags int) (n, oobn int, err error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, errno := syscall.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if errno != 0 {
		return 0, 0, errno
	}
	return int(r), int(msg.Controllen), nil
}

// rawSendto is unix.Sendto(fd, p, flags, &SockaddrInet4{Addr: to}) for a
// non-blocking call.
func rawSendto(fd int, p []byte, flags int, to [4]byte) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to}
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	_, _, errno := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(base), uintptr(len(p)), uintptr(flags),
		uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	if errno != 0 {
		return errno
	}
	return nil
}

// rawTimerfdSettime is unix.TimerfdSettime(fd, 0, spec, nil).
func rawTimerfdSettime(fd int, spec *unix.ItimerSpec) error {
	_, _, errno := syscall.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), 0, uintptr(unsafe.Pointer(spec)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// rawRead is a read(2) of a non-blocking descriptor.
func rawRead(fd int, p []byte) (int, error) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	r, _, errno := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(base), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// rawRecvmsg6 is rawRecvmsg that also returns the sender's address.
func rawRecvmsg6(fd int, p, oob []byte, from *unix.RawSockaddrInet6, flags int) (n, oobn int, err error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(from))
	msg.Namelen = uint32(unsafe.Sizeof(*from))
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, errno := syscall.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if errno != 0 {
		return 0, 0, errno
	}
	return int(r), int(msg.Controllen), nil
}

// rawSendmsg6 sends p to `to` with the control messages oob, for a
// non-blocking call.
func rawSendmsg6(fd int, p, oob []byte, to *unix.RawSockaddrInet6) error {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(to))
	msg.Namelen = uint32(unsafe.Sizeof(*to))
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	_, _, errno := syscall.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
