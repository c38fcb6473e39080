package keepalived

import (
	"slices"
	"strings"
)

// The keepalived keywords haa does not implement, by block. A keyword in
// these tables is reported with its message and its value (or block) is
// not converted; a keyword in no table and without a handler is an
// "unknown keyword" error. The message says what haa does instead and
// what to do.
//
// The line between a warning and an error: a warning when haa does the
// same job differently, or the keyword only tunes keepalived's own process,
// logging, mail or SNMP, so that running without it keeps the addresses
// and the real servers where keepalived would put them; an error when
// dropping it would change which node holds the addresses or which real
// servers get traffic, or when haa has no way to express the value.
type unsupported struct {
	msg string
	err bool
}

func warn(msg string) unsupported { return unsupported{msg: msg} }
func fail(msg string) unsupported { return unsupported{msg: msg, err: true} }

const (
	mailMsg    = "haa sends no e-mail: every state change is an event (haactl watch, or the notify commands): remove it"
	snmpMsg    = "haa has no SNMP agent: read the state with haactl or its gRPC API: remove it"
	processMsg = "tunes keepalived's own processes; haad has no equivalent: remove it"
	gnaMsg     = "haa spaces neighbour advertisements like gratuitous ARPs (garp_interval): remove it"
	ignoredMsg = "has no equivalent in haa and is ignored: remove it"
	// haa drops an advert whose address list is not its own (RFC 5798
	// 7.1), unless it comes from the address owner.
	skipCheckMsg = "haa always checks the addresses of adverts: it drops an advert whose address list differs from its own (except the address owner's), so the virtual_ipaddress lists must be identical on every node: make them so and remove it"
)

// topUnsupported are top-level keywords (blocks or lines).
var topUnsupported = map[string]unsupported{
	"static_ipaddress":         warn("haa does not add static addresses: configure them in the system's network configuration and remove this block"),
	"static_routes":            warn("haa does not add static routes: configure them in the system's network configuration and remove this block"),
	"static_rules":             warn("haa does not add static routing rules: configure them in the system's network configuration and remove this block"),
	"track_group":              fail("haa has no track groups: remove the block and the track_group options of its addresses"),
	"garp_group":               warn("haa sends its gratuitous ARPs per instance (garp_master_*): remove the block"),
	"linkbeat_interfaces":      warn("haa follows link state through netlink events: remove it"),
	"linkbeat_use_polling":     warn("haa follows link state through netlink events: remove it"),
	"interface_up_down_delays": warn("haa reacts to link changes at once: remove the block"),
	"bfd_instance":             fail("haa has no BFD: track the peer with a vrrp_script (e.g. a ping) instead and remove the block"),
	"SSL":                      warn("haa's SSL_GET (https) check presents no client certificate and does not verify the server (as keepalived by default): remove the block"),
	"net_namespace":            warn("haad runs in the network namespace it is started in: start it there (ip netns exec NAME haad ...) and remove this line"),
	"net_namespace_ipvs":       warn(processMsg),
	"namespace_with_ipsets":    warn(processMsg),
	"use_pid_dir":              warn(processMsg),
	"instance":                 warn(processMsg),
	"child_wait_time":          warn(processMsg),
}

// globalUnsupported are the keywords of global_defs haa does not implement.
var globalUnsupported = map[string]unsupported{
	"notification_email":                  warn(mailMsg),
	"notification_email_from":             warn(mailMsg),
	"smtp_server":                         warn(mailMsg),
	"smtp_helo_name":                      warn(mailMsg),
	"smtp_connect_timeout":                warn(mailMsg),
	"smtp_alert":                          warn(mailMsg),
	"smtp_alert_vrrp":                     warn(mailMsg),
	"smtp_alert_checker":                  warn(mailMsg),
	"no_email_faults":                     warn(mailMsg),
	"no_checker_emails":                   warn(mailMsg),
	"enable_snmp_vrrp":                    warn(snmpMsg),
	"enable_snmp_keepalived":              warn(snmpMsg),
	"enable_snmp_checker":                 warn(snmpMsg),
	"enable_snmp_rfc":                     warn(snmpMsg),
	"enable_snmp_rfcv2":                   warn(snmpMsg),
	"enable_snmp_rfcv3":                   warn(snmpMsg),
	"enable_traps":                        warn(snmpMsg),
	"snmp_socket":                         warn(snmpMsg),
	"enable_dbus":                         warn("haa has no D-Bus interface: use haactl or its gRPC API: remove it"),
	"dbus_service_name":                   warn("haa has no D-Bus interface: use haactl or its gRPC API: remove it"),
	"vrrp_skip_check_adv_addr":            warn(skipCheckMsg),
	"vrrp_check_unicast_src":              warn("haa accepts unicast adverts from any source on the interface: remove it"),
	"vrrp_gna_interval":                   warn(gnaMsg),
	"vrrp_lower_prio_no_advert":           warn("haa follows the RFC: a master ignores adverts of lower priority: remove it"),
	"vrrp_higher_prio_send_advert":        warn("haa follows the RFC: a master that sees a higher priority becomes backup: remove it"),
	"vrrp_garp_lower_prio_delay":          warn("haa sends no gratuitous ARPs on lower-priority adverts: remove it"),
	"vrrp_garp_lower_prio_repeat":         warn("haa sends no gratuitous ARPs on lower-priority adverts: remove it"),
	"vrrp_min_garp":                       warn("haa's gratuitous ARPs are set per instance (garp_master_*): remove it"),
	"vrrp_garp_extra_if":                  warn("haa has no VMAC interfaces: remove it"),
	"vrrp_vmac_garp_intvl":                warn("haa has no VMAC interfaces: remove it"),
	"vmac_prefix":                         warn("haa has no VMAC interfaces: remove it"),
	"vmac_addr_prefix":                    warn("haa has no VMAC interfaces: remove it"),
	"vrrp_iptables":                       warn("haa adds no firewall rules (keepalived's strict mode blocks traffic to the VIPs with them): remove it"),
	"vrrp_ipsets":                         warn("haa adds no firewall rules: remove it"),
	"nftables":                            warn("haa adds no firewall rules for VRRP: remove it"),
	"nftables_priority":                   warn("haa adds no firewall rules for VRRP: remove it"),
	"nftables_ifindex":                    warn("haa adds no firewall rules for VRRP: remove it"),
	"nftables_counters":                   warn("haa adds no firewall rules for VRRP: remove it"),
	"nftables_ipvs":                       warn("haa programs fwmark services itself: remove it"),
	"nftables_ipvs_priority":              warn("haa programs fwmark services itself: remove it"),
	"nftables_ipvs_start_fwmark":          warn("haa programs fwmark services itself: remove it"),
	"vrrp_priority":                       warn(processMsg),
	"vrrp_no_swap":                        warn(processMsg),
	"vrrp_rt_priority":                    warn(processMsg),
	"vrrp_cpu_affinity":                   warn(processMsg),
	"vrrp_rlimit_rttime":                  warn(processMsg),
	"vrrp_rlimit_rtime":                   warn(processMsg),
	"checker_priority":                    warn(processMsg),
	"checker_no_swap":                     warn(processMsg),
	"checker_rt_priority":                 warn(processMsg),
	"checker_cpu_affinity":                warn(processMsg),
	"checker_rlimit_rttime":               warn(processMsg),
	"checker_rlimit_rtime":                warn(processMsg),
	"bfd_priority":                        warn(processMsg),
	"bfd_no_swap":                         warn(processMsg),
	"bfd_rt_priority":                     warn(processMsg),
	"bfd_cpu_affinity":                    warn(processMsg),
	"bfd_rlimit_rttime":                   warn(processMsg),
	"bfd_rlimit_rtime":                    warn(processMsg),
	"max_auto_priority":                   warn(processMsg),
	"min_auto_priority_delay":             warn(processMsg),
	"process_names":                       warn(processMsg),
	"process_name":                        warn(processMsg),
	"vrrp_process_name":                   warn(processMsg),
	"checker_process_name":                warn(processMsg),
	"lvs_process_name":                    warn(processMsg),
	"bfd_process_name":                    warn(processMsg),
	"umask":                               warn(processMsg),
	"random_seed":                         warn(processMsg),
	"reload_check_config":                 warn(processMsg),
	"reload_time_file":                    warn(processMsg),
	"reload_repeat":                       warn(processMsg),
	"reload_file":                         warn(processMsg),
	"include_check":                       warn(processMsg),
	"tmp_config_directory":                warn(processMsg),
	"data_use_instance":                   warn(processMsg),
	"vrrp_netlink_cmd_rcv_bufs":           warn(processMsg),
	"vrrp_netlink_cmd_rcv_bufs_force":     warn(processMsg),
	"vrrp_netlink_monitor_rcv_bufs":       warn(processMsg),
	"vrrp_netlink_monitor_rcv_bufs_force": warn(processMsg),
	"process_monitor_rcv_bufs":            warn(processMsg),
	"process_monitor_rcv_bufs_force":      warn(processMsg),
	"lvs_netlink_cmd_rcv_bufs":            warn(processMsg),
	"lvs_netlink_cmd_rcv_bufs_force":      warn(processMsg),
	"lvs_netlink_monitor_rcv_bufs":        warn(processMsg),
	"lvs_netlink_monitor_rcv_bufs_force":  warn(processMsg),
	"vrrp_rx_bufs_policy":                 warn(processMsg),
	"vrrp_rx_bufs_multiplier":             warn(processMsg),
	"dynamic_interfaces":                  warn("haa waits for a missing interface and starts the instance when it appears: remove it"),
	"disable_local_igmp":                  warn(ignoredMsg),
	"log_unknown_vrids":                   warn("haa counts the adverts it drops (haactl describe instance): remove it"),
	"checker_log_all_failures":            warn("haa reports every health check transition as an event: remove it"),
	"rs_init_notifies":                    warn("haa runs notify_up/notify_down on transitions only: remove it"),
	"vrrp_notify_priority_changes":        warn("haa reports priority changes as events: remove it"),
	"notify_fifo":                         warn("haa has no notify FIFO: use the notify commands, or watch events (haactl watch): remove it"),
	"notify_fifo_script":                  warn("haa has no notify FIFO: use the notify commands, or watch events (haactl watch): remove it"),
	"vrrp_notify_fifo":                    warn("haa has no notify FIFO: use the notify commands, or watch events (haactl watch): remove it"),
	"vrrp_notify_fifo_script":             warn("haa has no notify FIFO: use the notify commands, or watch events (haactl watch): remove it"),
	"lvs_notify_fifo":                     warn("haa has no notify FIFO: use notify_up/notify_down, or watch events (haactl watch): remove it"),
	"lvs_notify_fifo_script":              warn("haa has no notify FIFO: use notify_up/notify_down, or watch events (haactl watch): remove it"),
	"startup_script":                      warn("haa runs no start-up script: run it from haad's service unit (ExecStartPre) and remove it"),
	"startup_script_timeout":              warn("haa runs no start-up script: run it from haad's service unit (ExecStartPre) and remove it"),
	"shutdown_script":                     warn("haa runs no shutdown script: run it from haad's service unit (ExecStopPost) and remove it"),
	"shutdown_script_timeout":             warn("haa runs no shutdown script: run it from haad's service unit (ExecStopPost) and remove it"),
	"vrrp_startup_delay":                  warn("haa starts its instances as backup and lets the election decide: remove it"),
	"lvs_timeouts":                        warn("haa leaves IPVS's connection timeouts as the kernel has them: set them with ipvsadm --set and remove it"),
	"lvs_sync_daemon":                     warn("haa does not run IPVS's connection synchronisation daemon: connections of a failed director are not carried over; start it with ipvsadm --start-daemon if you need it, and remove this line"),
	"lvs_id":                              warn("the old name of router_id: write router_id instead (this value is not used)"),
}

// instanceUnsupported are the keywords of vrrp_instance haa does not
// implement.
var instanceUnsupported = map[string]unsupported{
	"dont_track_primary":         warn("haa always tracks the instance's own interface (down: FAULT): remove it"),
	"use_vmac_addr":              warn("haa puts the addresses of the other family on the interface itself, not on a virtual MAC interface of their own: remove it"),
	"use_ipvlan":                 warn("haa has no ipvlan interfaces: remove it"),
	"garp_extra_if":              warn("haa has no VMAC interfaces: remove it"),
	"vmac_garp_intvl":            warn("haa has no VMAC interfaces: remove it"),
	"skip_check_adv_addr":        warn(skipCheckMsg),
	"check_unicast_src":          warn("haa accepts unicast adverts from any source on the interface: remove it"),
	"smtp_alert":                 warn(mailMsg),
	"debug":                      warn("haad's log level is set with its --log-level flag: remove it"),
	"linkbeat_use_polling":       warn("haa follows link state through netlink events: remove it"),
	"track_src_ip":               warn("haa does not track its source address: remove it"),
	"kernel_rx_buf_size":         warn(processMsg),
	"notify_priority_changes":    warn("haa reports priority changes as events: remove it"),
	"notify_deleted":             warn("haa runs notify_stop when an instance is removed: move the command there and remove it"),
	"notify_master_rx_lower_pri": warn("haa runs no command on lower-priority adverts: remove it"),
	"unicast_ttl":                warn("haa sends adverts with TTL 255 and checks it (RFC 5798): remove it"),
	"unicast_fault_no_peer":      warn(ignoredMsg),
	"old_unicast_checksum":       warn("haa computes the RFC checksum: remove it"),
	"garp_lower_prio_delay":      warn("haa sends no gratuitous ARPs on lower-priority adverts: remove it"),
	"garp_lower_prio_repeat":     warn("haa sends no gratuitous ARPs on lower-priority adverts: remove it"),
	"lower_prio_no_advert":       warn("haa follows the RFC: a master ignores adverts of lower priority: remove it"),
	"higher_prio_send_advert":    warn("haa follows the RFC: a master that sees a higher priority becomes backup: remove it"),
	"down_timer_adverts":         warn("haa uses the RFC's master down interval (3 adverts plus skew): remove it"),
	"timer_expired_backup":       warn(ignoredMsg),
	"promote_secondaries":        warn("haa does not change the interface's promote_secondaries setting: set it with sysctl if needed and remove it"),
	"lvs_sync_daemon_interface":  warn("haa does not run IPVS's connection synchronisation daemon: remove it"),
	"gna_interval":               warn(gnaMsg),
	"vrf":                        warn("haa runs the instance on its interface whatever its VRF: remove it"),
	"track_bfd":                  fail("haa has no BFD: track the peer with a vrrp_script (e.g. a ping) instead and remove the block"),
}

// syncGroupUnsupported are the keywords of vrrp_sync_group haa does not
// implement.
var syncGroupUnsupported = map[string]unsupported{
	"smtp_alert":              warn(mailMsg),
	"notify_priority_changes": warn("haa reports priority changes as events: remove it"),
	"track_bfd":               fail("haa has no BFD: track the peer with a vrrp_script (e.g. a ping) instead and remove the block"),
}

// scriptUnsupported are the keywords of vrrp_script haa does not implement.
var scriptUnsupported = map[string]unsupported{
	"init_fail": warn("haa starts every tracker as OK and lets its first results decide (fall failures in a row make it fail): remove it"),
}

// vsUnsupported are the keywords of virtual_server haa does not implement.
var vsUnsupported = map[string]unsupported{
	"alpha":              warn("haa starts every real server as healthy (keepalived's default without alpha); it fails after fall failed checks: remove it"),
	"omega":              warn("haa runs quorum_down when the quorum is lost, not when it stops: remove it"),
	"ha_suspend":         warn("haa checks the real servers whatever the state of its VRRP instances: remove it"),
	"ops":                warn("haa has no one-packet scheduling: remove it"),
	"hashed":             warn("scheduler flags are not supported: remove it"),
	"flag-1":             warn("scheduler flags are not supported: remove it"),
	"flag-2":             warn("scheduler flags are not supported: remove it"),
	"flag-3":             warn("scheduler flags are not supported: remove it"),
	"sh-port":            warn("scheduler flags are not supported: remove it"),
	"sh-fallback":        warn("scheduler flags are not supported: remove it"),
	"mh-port":            warn("scheduler flags are not supported: remove it"),
	"mh-fallback":        warn("scheduler flags are not supported: remove it"),
	"persistence_engine": warn("haa has no IPVS persistence engines: remove it"),
	"smtp_alert":         warn(mailMsg),
	"snmp_name":          warn(snmpMsg),
	"ip_family":          warn("haa takes the family from the addresses: remove it"),
	"nat_mask":           warn(ignoredMsg),
}

// rsUnsupported are the keywords of real_server haa does not implement.
var rsUnsupported = map[string]unsupported{
	"alpha":      warn("haa starts every real server as healthy (keepalived's default without alpha): remove it"),
	"smtp_alert": warn(mailMsg),
	"snmp_name":  warn(snmpMsg),
	"BFD_CHECK":  fail("haa has no BFD: check the real server with TCP_CHECK, HTTP_GET or MISC_CHECK instead"),
	"FILE_CHECK": fail("haa has no file check for real servers: check the server with TCP_CHECK, HTTP_GET or MISC_CHECK (a MISC_CHECK can read the file) instead"),
	"track_file": fail("haa has no file tracking for real servers: check the server with a MISC_CHECK that reads the file instead"),
}

// checkerUnsupported are keywords of any checker haa does not implement.
var checkerUnsupported = map[string]unsupported{
	"bindto":           warn("haa connects from the address the kernel chooses: remove it"),
	"bind_port":        warn("haa connects from a port the kernel chooses: remove it"),
	"bind_if":          warn("haa connects through the interface the kernel chooses: remove it"),
	"fwmark":           warn("haa marks no check packets: remove it"),
	"alpha":            warn("haa starts every real server as healthy (keepalived's default without alpha): remove it"),
	"log_all_failures": warn("haa reports every health check transition as an event: remove it"),
	"connect_ip":       fail("haa checks the real server's own address: remove connect_ip (check another address with a MISC_CHECK)"),
}

// httpUnsupported are keywords of HTTP_GET/SSL_GET haa does not implement.
var httpUnsupported = map[string]unsupported{
	"http_protocol": warn("haa sends HTTP/1.1 requests: remove it"),
	"fast_recovery": warn("haa makes a failed server healthy after rise good checks (1): remove it"),
	"enable_sni":    warn("haa always sends the host name (virtualhost, else the address) as SNI: remove it"),
	"tls_compliant": warn(ignoredMsg),
}

// urlUnsupported are keywords of url blocks haa does not implement.
var urlUnsupported = map[string]unsupported{
	"regex_no_match":   fail("haa's regex must match the body: invert the expression, or check with a MISC_CHECK, and remove regex_no_match"),
	"regex_options":    warn("haa's regex is RE2 without options: write (?i) in the expression for case-insensitive matching and remove it"),
	"regex_stack":      warn(ignoredMsg),
	"regex_min_offset": warn("haa matches the regex against the whole body: remove it"),
	"regex_max_offset": warn("haa matches the regex against the whole body: remove it"),
}

// Keyword is one keepalived keyword haa does not support, for a list
// (haactl import --unsupported).
type Keyword struct {
	Block   string // where it is written: "top", "global_defs", "vrrp_instance", ...
	Keyword string
	// Refused: a file that uses it does not convert (else it is a
	// warning and the rest converts).
	Refused bool
	Why     string
}

// refusedValues are values of supported keywords that haa refuses, for
// the list.
var refusedValues = []Keyword{
	{"virtual_server", "virtual_server IP (no port)", true, "haa has no all-ports services: give the port, or use a fwmark virtual_server"},
	{"virtual_server_group", "fwmark and address entries in one group", true, "haa keeps them in separate virtual servers (their real servers' ports differ): split the group"},
	{"real_server", "a second checker, a second url", true, "haa runs one health check per real server: keep one, or combine the checks in a MISC_CHECK script"},
	{"SMTP_CHECK", "host { ... }", true, "haa checks the real server itself: move connect_port out of the host block and remove it (check other hosts with a MISC_CHECK)"},
	{"UDP_CHECK", "payload / require_reply with bytes that are not text", true, "haa's udp check sends and expects text: check this server with a MISC_CHECK instead"},
	{"vrrp_instance", "weight W reverse (vrrp_script, track_*)", true, "haa has no reversed weights: use a negative weight (subtracted while the check fails) or a positive one (added while it succeeds) instead"},
}

// Unsupported lists the keepalived keywords haa does not support, by
// block, each with what haa does instead.
func Unsupported() []Keyword {
	tables := []struct {
		block string
		t     map[string]unsupported
	}{
		{"top", topUnsupported}, {"global_defs", globalUnsupported}, {"vrrp_instance", instanceUnsupported},
		{"vrrp_sync_group", syncGroupUnsupported}, {"vrrp_script", scriptUnsupported},
		{"virtual_server", vsUnsupported}, {"real_server", rsUnsupported}, {"checker", checkerUnsupported},
		{"HTTP_GET/SSL_GET", httpUnsupported}, {"url", urlUnsupported},
	}
	var out []Keyword
	for _, tb := range tables {
		var block []Keyword
		for k, u := range tb.t {
			block = append(block, Keyword{Block: tb.block, Keyword: k, Refused: u.err, Why: u.msg})
		}
		slices.SortFunc(block, func(a, b Keyword) int { return strings.Compare(a.Keyword, b.Keyword) })
		out = append(out, block...)
	}
	return append(out, refusedValues...)
}
