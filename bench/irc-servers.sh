#!/bin/sh
# The IRC servers chat-bench --protocol irc measures ours against: ngircd
# and InspIRCd from Debian's packages, each a throwaway process on
# 127.0.0.1 with a configuration of its own, flood limits relaxed, no DNS or
# ident lookups, and limits (clients, per address, SendQ, RecvQ, nickname
# length) too large to matter. The benchmark's set-up, not the tests': CI
# never runs it. See docs/chat-bench.md.
#
#   bench/irc-servers.sh install            apt-get install what is missing
#   bench/irc-servers.sh ngircd PORT DIR    write DIR/ngircd.conf, run ngircd
#   bench/irc-servers.sh inspircd PORT DIR  write DIR/inspircd.conf, run it
#   bench/irc-servers.sh run [OPTIONS]      install, then chat-bench
#       --protocol irc against ours, ngircd and InspIRCd side by side
#       (OPTIONS go to chat-bench: --points, --seconds, --rounds, ...)
#
# The server commands are what chat-bench's --server takes:
#   --server "ngircd=bench/irc-servers.sh ngircd {port} {workdir}"
# (chat-bench replaces {port} and {workdir}, and stops the server by its
# process group). ngircd throttles every client to a few commands a second
# unless it has user mode +F, which only an IRC operator may set: the
# senders become one with the --irc-send lines below.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

install() {
    missing=
    command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ] || missing="$missing ngircd"
    [ -x /usr/sbin/inspircd ] || missing="$missing inspircd"
    if [ -n "$missing" ]; then
        echo "irc-servers.sh: installing$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing >&2
    fi
}

ngircd() {
    port=$1 dir=$2
    cat >"$dir/ngircd.conf" <<EOF
[Global]
Name = bench.ngircd
Info = chat-bench
Listen = 127.0.0.1
Ports = $port
MotdPhrase = chat-bench

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxListSize = 1000
PingTimeout = 3600
PongTimeout = 600
IdleTimeout = 0

[Options]
DNS = no
Ident = no
PAM = no
MorePrivacy = no
NoticeBeforeRegistration = no
OperCanUseMode = yes

[Operator]
Name = bench
Password = bench
EOF
    exec /usr/sbin/ngircd --nodaemon --config "$dir/ngircd.conf"
}

inspircd() {
    port=$1 dir=$2
    mkdir -p "$dir/data" "$dir/logs"
    cat >"$dir/inspircd.conf" <<EOF
<config format="xml">
<server name="bench.inspircd" description="chat-bench" network="bench">
<admin name="chat-bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="$port" type="clients">
<path configdir="$dir" datadir="$dir/data" logdir="$dir/logs" moduledir="/usr/lib/inspircd/modules">
<pid file="$dir/inspircd.pid">
<connect name="bench" allow="127.0.0.1" maxchans="100" timeout="60"
         pingfreq="3600" hardsendq="1073741824" softsendq="1073741824"
         recvq="1048576" threshold="1000000000" commandrate="1000000000"
         fakelag="no" localmax="1000000" globalmax="1000000" limit="1000000"
         maxconnwarn="no" resolvehostnames="no" useident="no" usednsbl="no">
<performance netbuffersize="65536" somaxconn="4096" clonesonconnect="no"
             timeskipwarn="0" quietbursts="yes">
<security hidesplits="no" hideulines="no" announceinvites="dynamic"
          maxtargets="20" customversion="" operspywhois="no"
          runasuser="" runasgroup="" restrictbannedusers="no" genericoper="no"
          userstats="Pu">
<limits maxnick="30" maxchan="64" maxmodes="20" maxident="11" maxhost="64"
        maxquit="255" maxtopic="307" maxkick="255" maxreal="128" maxaway="200">
<options prefixquit="Quit: " syntaxhints="no" cyclehostsfromuser="no"
         announcets="no" allowmismatched="no" defaultbind="auto"
         hostintopic="yes" pingwarning="0" serverpingfreq="1m"
         defaultmodes="nt" xlinemessage="bench" allowzerolimit="no"
         exemptchanops="" invitebypassmodes="yes" nosnoticestack="no">
<dns timeout="1">
<class name="bench" commands="*" privs="*" usermodes="*" chanmodes="*">
<type name="Bench" classes="bench">
<oper name="bench" password="bench" host="*@*" type="Bench">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="inspircd.log">
EOF
    # Debian runs it as its own user; here it runs as whoever runs the
    # benchmark, and as root only if told it may.
    if [ "$(id -u)" = 0 ]; then root=--runasroot; else root=; fi
    exec /usr/sbin/inspircd --nofork --nopid $root --config "$dir/inspircd.conf"
}

case "${1:-}" in
install) install ;;
ngircd | inspircd)
    [ $# -eq 3 ] || { echo "usage: $0 $1 PORT DIR" >&2; exit 2; }
    "$1" "$2" "$3"
    ;;
run)
    shift
    install
    self="$here/irc-servers.sh"
    exec chat-bench --protocol irc --also-line \
        --server "ngircd=$self ngircd {port} {workdir}" \
        --server "inspircd=$self inspircd {port} {workdir}" \
        --irc-send "OPER bench bench" --irc-send "MODE {nick} +F" "$@"
    ;;
*)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
