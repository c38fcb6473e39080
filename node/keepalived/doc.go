// Package keepalived reads keepalived.conf files and converts them into
// haa's configuration (haav1.AgentConfig), so that a keepalived user can
// run an existing file unchanged (haad --keepalived-config) or convert it
// once (haactl import); Fleet merges the files of several nodes into one
// Fleet document.
//
// # Grammar
//
// Words are separated by white space; { and } are words of their own
// (`real_server 10.0.0.1 80{`), and a { may open a block on the next line.
// A statement is a keyword, its values on the same line, and optionally a
// block. ! and # start a comment anywhere outside double quotes, even
// inside a word (`auth_pass pa#ss` is "pa", as in keepalived 2.2); \# and
// \! do not escape them in keepalived 2.2.7 (the \ is dropped and the line
// still ends there), and a warning says so. "Double quotes" make one word
// of the text between them (\" is a quote inside). `include PATTERN` lines
// are replaced by the files the glob matches, in sorted order, relative to
// the including file's directory; a glob that matches nothing is a
// warning (keepalived goes on without it), a plain path that does not
// exist, an include loop or nesting deeper than 16 an error. Only regular
// files are read: an include of a device (/dev/zero), a FIFO or a socket
// is an error at the include, as is a file of more than MaxFileBytes
// (4 MiB), or one that brings what a configuration reads to more than
// MaxTotalBytes (16 MiB) or MaxFiles files; past MaxWords words the rest
// is not read. Text outside comments must be UTF-8. Blocks nest at most 8
// deep; a } without its { or a { never closed is an error at its line.
// keepalived's preprocessor ($NAME parameters, @name conditional lines,
// ~SEQ) is refused.
//
// # Coverage
//
// Converted (with keepalived's semantics; see the comments at each):
//   - global_defs: router_id, vrrp_version, vrrp_mcast_group4,
//     vrrp_mcast_group6,
//     vrrp_garp_master_delay/_repeat/_refresh/_refresh_repeat,
//     vrrp_garp_interval, script_user, default_interface, vrrp_strict (its
//     effects on the instances), enable_script_security (a note),
//     lvs_flush, lvs_flush_on_stop [VS] (and its old name
//     lvs_flush_onstop);
//   - vrrp_script: script, interval, timeout, weight, rise, fall, user;
//     track_file (or its old name vrrp_track_file): file, weight;
//     vrrp_track_process: process,
//     param_match, weight, quorum, quorum_max;
//   - vrrp_instance: state, interface, virtual_router_id, priority,
//     advert_int, version, authentication { auth_type PASS or AH, auth_pass },
//     virtual_ipaddress (dev, label, brd, scope; no_track and
//     preferred_lft are ignored with a warning), virtual_ipaddress_excluded
//     (excludedVips, IPv6 allowed), no_virtual_ipaddress (keepalived 2.2.8+;
//     without it an instance with no address is kept for VRRPv2 and refused
//     for VRRPv3 and strict mode, as keepalived), virtual_routes and
//     virtual_rules (ip route / ip rule syntax, a subset; no_track ignored
//     with a warning),
//     nopreempt, preempt, preempt_delay, unicast_src_ip, mcast_src_ip,
//     unicast_peer, mcast_dst_ip, track_interface, track_script,
//     track_file, track_process (each NAME [weight W]), notify_master,
//     notify_backup, notify_fault, notify_stop, notify, garp_master_*,
//     garp_interval, strict_mode, v3_checksum_as_v2; IPv6 instances (the
//     family of the first address, or native_ipv6; VRRPv3; an address of
//     the other family in virtual_ipaddress is left out with keepalived's
//     warning), use_vmac [NAME] and vmac_xmit_base (vmac), accept and
//     no_accept (acceptMode; strict mode's no_accept);
//   - vrrp_sync_group: group, notify_*, track_*, sync_group_tracking_weight
//     (and its old name global_tracking); a group of one instance (which
//     keepalived runs, with a warning) is left out and its lines go to
//     the instance;
//   - virtual_server IP PORT | fwmark N: delay_loop, lb_algo/lvs_sched,
//     lb_kind/lvs_method, protocol (keepalived's default UDP, with a
//     warning), weight (the default weight of its real servers),
//     persistence_timeout,
//     persistence_granularity, sorry_server, sorry_server_inhibit,
//     sorry_server_lvs_method, quorum, hysteresis, quorum_up,
//     quorum_down, inhibit_on_failure, virtualhost, retry,
//     delay_before_retry, connect_timeout, warmup; real_server: weight,
//     inhibit_on_failure [true|false], uthreshold, lthreshold, notify_up,
//     notify_down, virtualhost, the same
//     timings, and one checker: HTTP_GET / SSL_GET (one url { path, digest,
//     status_code, virtualhost, regex }, virtualhost, nb_get_retry),
//     TCP_CHECK, SMTP_CHECK (helo_name), DNS_CHECK (type, name),
//     MISC_CHECK (misc_path, misc_timeout, misc_dynamic, user), UDP_CHECK
//     (payload, require_reply), PING_CHECK, with connect_port.
//
// Warned about and not converted: what haa does not do or does
// differently, when running without it keeps the addresses and the real
// servers where keepalived would put them (e-mail, SNMP, D-Bus, process
// tuning, a VMAC's own MAC address, use_vmac_addr, notify FIFOs, IPVS sync daemon, checker binding options, ...): the tables of
// keywords.go, each with what to do instead.
//
// Refused (an error with file:line; past MaxErrors, the rest are counted,
// not listed): an unknown or misspelled keyword (with the closest known
// one as a hint, never used in its place), a bad value,
// and what haa cannot express faithfully: BFD, track groups, real-server file checks, a second checker or url on a
// real server, reversed weights, binary UDP payloads, a checker's
// connect_ip, SMTP_CHECK host blocks.
//
// # Output
//
// Only the fields the file sets, or where keepalived's default differs from
// haa's, are written: the VRRP version (keepalived's default is 2, haa's 3)
// and the advertisement interval always; a tracked file's weight 1; a
// check's interval 60s (delay_loop), timeout 5s (connect_timeout) and
// fall 2 (retry 1); the scheduler wlc; loadBalancer.backend ipvs.
package keepalived
