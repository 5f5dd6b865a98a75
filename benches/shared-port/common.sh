# Shared by run.sh, paired.sh and profile.sh (sourced, not run): the gateway config of each
# mode, and the CPU figure of a castgate-load report.

# gateway_config MODE HTTP_PORT DIR -> the path of a config file for MODE (shared: the one
# media port; range or old: a port per publisher, the only mode of builds before issue 12).
gateway_config() {
    local f="$3/$1.toml"
    {
        echo '[http]'
        echo "listen = \"127.0.0.1:$2\""
        echo '[webrtc]'
        echo 'interfaces = ["127.0.0.1"]'
        case $1 in
            shared) echo 'udp_port = 18189' ;;
            range | old) echo 'udp_port_range = [40000, 40999]' ;;
        esac
    } >"$f"
    echo "$f"
}

# cpu_of REPORT.json -> CPU-ms per stream-second
cpu_of() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/cpu_of.py" "$1"
}
