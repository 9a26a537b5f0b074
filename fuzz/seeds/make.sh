#!/usr/bin/env bash
# Regenerates the committed seed corpora in fuzz/seeds/TARGET/ from real
# peers and real files: SMTP sessions of Python smtplib, swaks and Postfix's
# smtp-source recorded by a loopback server (smtp_record.py), replies of
# Postfix's smtp-sink, PKCS#12/PEM/DER files written by OpenSSL 3, TLSA
# records of those certificates, MTA-STS/TLS-RPT records and policies with
# the RFC 8461/8460 edge cases, patterns and the configuration from
# examples/portcullis.toml. Needs openssl, python3, swaks, postfix (see
# scripts/install-test-deps.sh). Everything runs on 127.0.0.1.
#
# Most targets read a control byte first (see each fuzz_targets/*.rs); the
# prefixes below pick the mode that parses the rest as given.
#
# Keys and certificates are generated afresh, so a rerun changes the binary
# seeds; commit what it writes. Run `scripts/fuzz.sh --cmin` afterwards to
# minimise with cargo fuzz cmin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

seed() { # seed TARGET NAME [PREFIX-HEX] < bytes
  local dir="$here/$1"
  mkdir -p "$dir"
  { [ -z "${3:-}" ] || printf "\\x$3"; cat; } >"$dir/$2"
}
for t in smtp_server_command smtp_client_reply cert_pkcs12 cert_pem cert_der \
  dane_tlsa_presentation dane_tlsa_wire dane_dns_answer policy_mta_sts_txt \
  policy_mta_sts_policy policy_tlsrpt_txt policy_hat_pattern policy_rat_pattern \
  policy_tls_required_header config_load policy_tlsrpt_report mta_tlsrpt_rua mta_tlsrpt_mail \
  smtp_server_bdat; do
  rm -rf "${here:?}/$t"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- Certificates and keys (OpenSSL 3) --------------------------------------
q() { openssl "$@" 2>/dev/null; }
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=Fuzz Root CA" -keyout ca.key -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign
q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mx1.example.com" \
  -keyout leaf.key -out leaf.csr
printf 'subjectAltName=DNS:mx1.example.com,DNS:*.mx.example.com,IP:192.0.2.25\nextendedKeyUsage=serverAuth\n' >ext
q x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 825 -extfile ext -out leaf.pem
q req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/O=Fuzz/CN=rsa.example.net" \
  -addext subjectAltName=DNS:rsa.example.net -keyout rsa.key -out rsa.pem
q req -x509 -newkey ed25519 -nodes -days 30 -subj "/CN=ed.example.org" -keyout ed.key -out ed.pem
cat leaf.pem ca.pem >chain.pem

# The pool of real keys and certificates cert_pkcs12_structured builds its
# files from (compiled into the target): key i belongs to certificate i.
pool="$here/../fuzz_targets/pkcs12_pool"
mkdir -p "$pool"
q pkcs8 -topk8 -nocrypt -in leaf.key -outform DER -out "$pool/ec-key.p8.der"
q pkcs8 -topk8 -nocrypt -in rsa.key -outform DER -out "$pool/rsa-key.p8.der"
for c in leaf:ec-leaf rsa:rsa ca:ca ed:ed25519; do
  q x509 -in "${c%%:*}.pem" -outform DER -out "$pool/${c#*:}.der"
done

# PKCS#12: default (AES-256/SHA-256) and -legacy (3DES/SHA-1), each with a
# passphrase the target picks by its first byte ("" 0, "pw" 1, "s3cret" 2).
p12() { # name prefix pass args...
  local name=$1 pre=$2 pass=$3
  shift 3
  q pkcs12 -export -passout "pass:$pass" "$@" -out p.p12
  seed cert_pkcs12 "$name" "$pre" <p.p12
}
p12 ec-chain-s3cret 02 s3cret -inkey leaf.key -in chain.pem -name mx1
p12 ec-chain-legacy-s3cret 02 s3cret -legacy -inkey leaf.key -in chain.pem -name mx1
p12 ec-leaf-pw 01 pw -inkey leaf.key -in leaf.pem
p12 ec-leaf-legacy-pw 01 pw -legacy -inkey leaf.key -in leaf.pem
p12 ec-leaf-empty 00 "" -inkey leaf.key -in leaf.pem
p12 rsa-legacy-empty 00 "" -legacy -inkey rsa.key -in rsa.pem
p12 ed25519-s3cret 02 s3cret -inkey ed.key -in ed.pem
p12 ec-nomac-pw 01 pw -nomac -inkey leaf.key -in leaf.pem
p12 ec-sha1mac-iter1-pw 01 pw -macalg sha1 -iter 1 -inkey leaf.key -in chain.pem
p12 ec-unencrypted-pw 01 pw -keypbe NONE -certpbe NONE -inkey leaf.key -in chain.pem
p12 certs-only-pw 01 pw -nokeys -in chain.pem
p12 key-mismatch-pw 01 pw -inkey rsa.key -in leaf.pem -certfile ca.pem 2>/dev/null || true
p12 ec-chain-wrongpass 01 s3cret -inkey leaf.key -in chain.pem

# PEM and DER: OpenSSL's chain, keys in PKCS#8, SEC1 and PKCS#1 form, and
# real roots from the system store (Mozilla's list).
seed cert_pem chain.pem <chain.pem
cat leaf.pem leaf.key | seed cert_pem leaf-and-pkcs8-key
q ec -in leaf.key -out leaf.sec1 && seed cert_pem ec-sec1-key <leaf.sec1
q rsa -in rsa.key -traditional -out rsa.pkcs1 && cat rsa.pem rsa.pkcs1 | seed cert_pem rsa-pkcs1
seed cert_pem ed25519-key-first < <(cat ed.key ed.pem)
seed cert_pem csr-not-a-cert <leaf.csr
for der in leaf rsa ed ca; do q x509 -in $der.pem -outform DER -out $der.der; done
seed cert_der leaf.der <leaf.der
seed cert_der rsa.der <rsa.der
seed cert_der ed25519.der <ed.der
q pkey -in leaf.key -pubout -outform DER | seed cert_der ec-spki
# The other curves, a subject without CN and SANs other than DNS names.
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-521 -nodes -days 30 -subj "/O=Fuzz P-521" \
  -addext subjectAltName=IP:2001:db8::25,email:postmaster@example.com,URI:https://example.com/ \
  -keyout p521.key -out p521.pem
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -days 30 -subj "/CN=p384.example.com" \
  -keyout p384.key -out p384.pem
for der in p521 p384; do q x509 -in $der.pem -outform DER | seed cert_der $der.der; done
q pkey -in p384.key -aes256 -passout pass:fuzz | seed cert_pem encrypted-key
q pkcs8 -topk8 -nocrypt -in p521.key -outform DER | seed cert_pem pkcs8-der-key
for rootca in ISRG_Root_X1 ISRG_Root_X2 DigiCert_Global_Root_G2; do
  f=/etc/ssl/certs/$rootca.pem
  [ -f "$f" ] || continue
  seed cert_pem "$rootca.pem" <"$f"
  q x509 -in "$f" -outform DER | seed cert_der "$rootca.der"
done

# ---- TLSA ---------------------------------------------------------------------
spki_sha256=$(q x509 -in leaf.pem -pubkey -noout | q pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
cert_sha512=$(q x509 -in ca.pem -outform DER | sha512sum | cut -d' ' -f1)
full_spki=$(q x509 -in ed.pem -pubkey -noout | q pkey -pubin -outform DER | xxd -p | tr -d '\n')
printf '3 1 1 %s' "$spki_sha256" | seed dane_tlsa_presentation dane-ee-spki-sha256
printf '2 0 2 %s' "$cert_sha512" | seed dane_tlsa_presentation dane-ta-cert-sha512
printf '3 1 0 %s' "$full_spki" | seed dane_tlsa_presentation dane-ee-spki-full
printf '3 1 1 %s %s' "${spki_sha256:0:32}" "${spki_sha256:32}" | seed dane_tlsa_presentation split-hex
printf '1 1 1 ( %s )' "$spki_sha256" | seed dane_tlsa_presentation parens
printf '\\# 35 030101%s' "$spki_sha256" | seed dane_tlsa_presentation rfc3597-generic
# Records a domain may publish by mistake: each is refused or set aside.
printf '3 1 1 %s' "${spki_sha256:0:63}" | seed dane_tlsa_presentation odd-hex
printf '3 1 1 %sg' "${spki_sha256:0:63}" | seed dane_tlsa_presentation bad-hex-digit
printf '3 1 1' | seed dane_tlsa_presentation no-data
printf '3 1 1 %s' "${spki_sha256:0:40}" | seed dane_tlsa_presentation short-digest
printf '255 2 9 00' | seed dane_tlsa_presentation unassigned
# dane_tlsa_wire: flags (1 check DANE-EE names, 2 ca.der as PKIX anchor,
# 4 the reference name is the leaf's), RDATA length (u16), RDATA, chain.
tlsa_wire() { # flags usage selector mtype hexdata name certfiles...
  local flags=$1 rdata
  rdata=$(printf '%02x%02x%02x%s' "$2" "$3" "$4" "$5")
  local name=$6
  shift 6
  { printf '%02x%04x%s' "$flags" $((${#rdata} / 2)) "$rdata" | xxd -r -p; cat "$@"; } |
    seed dane_tlsa_wire "$name"
}
ca_spki=$(q x509 -in ca.pem -pubkey -noout | q pkey -pubin -outform DER | xxd -p | tr -d '\n')
ca_spki_sha256=$(echo -n "$ca_spki" | xxd -r -p | sha256sum | cut -d' ' -f1)
tlsa_wire 0 3 1 1 "$spki_sha256" dane-ee-spki-sha256-match leaf.der
tlsa_wire 1 3 0 1 "$(sha256sum <leaf.der | cut -d' ' -f1)" dane-ee-cert-names-mismatch leaf.der
tlsa_wire 0 3 1 1 "$spki_sha256" dane-ee-mismatch rsa.der
tlsa_wire 4 2 0 2 "$cert_sha512" dane-ta-cert-sha512-chain leaf.der ca.der
tlsa_wire 0 2 1 1 "$ca_spki_sha256" dane-ta-spki-wrong-name leaf.der ca.der
tlsa_wire 4 2 1 0 "$ca_spki" dane-ta-bare-key leaf.der
tlsa_wire 4 2 0 0 "$(xxd -p <ca.der | tr -d '\n')" dane-ta-full-cert leaf.der
tlsa_wire 6 1 1 1 "$spki_sha256" pkix-ee-spki leaf.der ca.der
tlsa_wire 6 1 1 1 "$ca_spki_sha256" pkix-ee-ca-key-mismatch leaf.der ca.der
tlsa_wire 6 0 0 1 "$(sha256sum <ca.der | cut -d' ' -f1)" pkix-ta-cert leaf.der ca.der
tlsa_wire 2 0 1 1 "$ca_spki_sha256" pkix-ta-wrong-name leaf.der ca.der
tlsa_wire 4 0 1 1 "$ca_spki_sha256" pkix-ta-no-anchors leaf.der ca.der

# DNS answers as a resolver sends them (dnspython's wire encoder is not
# installed; dns_answer.py builds standard messages with struct).
python3 "$here/dns_answer.py" "$here/dane_dns_answer" "$spki_sha256"

# ---- SMTP client sessions (server side parses them) -----------------------------
port=$(free_port)
mkdir sessions
python3 "$here/smtp_record.py" server "$port" leaf.pem leaf.key sessions &
pids+=($!)
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break; sleep 0.1; done
python3 "$here/smtp_clients.py" "$port"
printf 'Subject: swaks\r\n\r\n.leading dot\r\n..two\r\n.\r\n' >body
swaks -s 127.0.0.1 -p "$port" -t b@example.com -f a@client.test --helo client.test --body @body >/dev/null
swaks -s 127.0.0.1 -p "$port" -t b@example.com,c@example.com -f a@client.test --pipeline --body @body >/dev/null
swaks -s 127.0.0.1 -p "$port" -t b@example.com -f a@client.test --tls --tls-verify 0 --body @body >/dev/null 2>&1 ||
  swaks -s 127.0.0.1 -p "$port" -t b@example.com -f a@client.test --tls --body @body >/dev/null
smtp-source -c -m 2 -r 2 -s 1 -l 300 -f a@client.test -t b@example.com "127.0.0.1:$port" >/dev/null 2>&1
smtp-source -L -m 1 "127.0.0.1:$port" 2>/dev/null || true
sleep 1
i=0
for s in sessions/session-*; do
  [ -s "$s" ] || continue # the readiness probe's empty connection
  i=$((i + 1))
  # 0x2e: TLS preferred, 16-byte pieces; 0x00: TLS off, 1-byte pieces.
  seed smtp_server_command "recorded-$i" 2e <"$s"
done
seed smtp_server_command smtplib-dsn-tls-off-bytewise 00 <"$(grep -l ORCPT sessions/session-* | head -1)"

# smtp_server_bdat reads a script of steps (bdat_script.py): the recorded
# sessions converted (selector 0xff: 1084-byte limit, 32-byte pieces), and
# RFC 3030's cases written by the script itself.
i=0
for s in sessions/session-*; do
  [ -s "$s" ] || continue
  i=$((i + 1))
  python3 "$here/bdat_script.py" ff <"$s" | seed smtp_server_bdat "recorded-$i"
done
python3 "$here/bdat_script.py" --cases "$here/smtp_server_bdat"

# ---- SMTP replies (client side parses them) -----------------------------------
sink() { # name sink-args...
  local name=$1 p
  shift
  p=$(free_port)
  smtp-sink -u postfix -h mx.sink.test "$@" "127.0.0.1:$p" 10 &
  local sp=$!
  for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$p),1)" 2>/dev/null && break; sleep 0.1; done
  python3 "$here/smtp_record.py" client "$p" replies
  kill $sp 2>/dev/null || true
  wait $sp 2>/dev/null || true
  # 0x1f: 32-byte pieces, no STARTTLS; 0x00: 1-byte pieces.
  seed smtp_client_reply "smtp-sink-$name" 1f <replies
}
sink default
sink no-esmtp-extras -E -p -8 -N
sink rcpt-hard-reject -f RCPT
sink mail-soft-reject -r MAIL
sink data-421 -Q DATA
sink bounce-at-dot -B "550 5.7.1 Message content rejected" -f .
sink soft-bounce-at-dot -b "451 4.3.0 Try again later" -r .
python3 - "$here" <<'EOF'
import sys, os
from importlib.machinery import SourceFileLoader
rec = SourceFileLoader("rec", os.path.join(sys.argv[1], "smtp_record.py")).load_module()
# Postfix-style replies around STARTTLS (selector 0x9f: issue STARTTLS).
tls = (b"220 mx.recorder.test ESMTP Postfix (Debian/GNU)\r\n" + rec.EHLO +
       b"220 2.0.0 Ready to start TLS\r\n" + rec.EHLO +
       b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
       b"250 2.0.0 Ok: queued as 4XyZ1\r\n" * 1 +
       b"250 2.1.0 Ok\r\n450 4.2.0 <c@mx.fuzz>: Recipient address rejected: Greylisted\r\n"
       b"550 5.1.1 <c@mx.fuzz>: Recipient address rejected: User unknown\r\n"
       b"554 5.5.1 Error: no valid recipients\r\n221 2.0.0 Bye\r\n")
d = os.path.join(sys.argv[1], "smtp_client_reply")
open(os.path.join(d, "postfix-starttls"), "wb").write(b"\x9f" + tls)
open(os.path.join(d, "postfix-starttls-refused"), "wb").write(
    b"\x9f220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available due to local problem\r\n221 2.0.0 Bye\r\n")
open(os.path.join(d, "greeting-554"), "wb").write(b"\x1f554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied\r\n")
open(os.path.join(d, "bare-lf-multiline"), "wb").write(b"\x00220-mx.example ESMTP\n220-second\n220 last\n250-mx\n250-SIZE 0\n250 8BITMIME\n")
EOF

# ---- MTA-STS, TLS-RPT, REQUIRETLS -------------------------------------------------
# The MTA-STS targets read an odd first byte as part of the text and, after
# an even one, expand bytes below 28 (13 for the TXT target) into grammar
# tokens. Text starting with "v" (even) goes through the token mode: 0x00,
# then the control characters written as the tokens that stand for them.
t() {
  printf '%b' "$3" | python3 -c '
import sys
data = sys.stdin.buffer.read()
tokens = {"policy_mta_sts_policy": {9: 6, 10: 7, 13: 9}, "policy_mta_sts_txt": {0: 9, 9: 3}}[sys.argv[1]]
out = bytearray(b"\0")
for b in data.replace(b"\r\n", b"\x08") if sys.argv[1] == "policy_mta_sts_policy" else data:
    out.append(tokens.get(b, b) if b != 8 or sys.argv[1] != "policy_mta_sts_policy" else 8)
sys.stdout.buffer.write(out)' "$1" | seed "$1" "$2"
}
t policy_mta_sts_txt rfc8461-example 'v=STSv1; id=20160831085700Z;'
t policy_mta_sts_txt no-trailing-semicolon 'v=STSv1; id=2019'
t policy_mta_sts_txt extension-field 'v=STSv1;id=abc123; ext_field=value-1 ;'
t policy_mta_sts_txt two-records-nul 'v=STSv1; id=1\0v=STSv1; id=2'
t policy_mta_sts_txt other-txt-and-sts 'google-site-verification=abc\0v=STSv1; id=20240101T000000'
t policy_mta_sts_txt id-too-long 'v=STSv1; id=123456789012345678901234567890123'
t policy_mta_sts_txt bad-version 'v=STSv2; id=1;'
t policy_mta_sts_txt tabs-and-spaces 'v=STSv1 ;\tid=Ab9 ; '
t policy_mta_sts_policy rfc8461-enforce 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n'
t policy_mta_sts_policy testing-lf 'version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 86400\n'
t policy_mta_sts_policy none-no-mx 'version: STSv1\nmode: none\nmax_age: 31557600\n'
t policy_mta_sts_policy max-age-too-big 'version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 31557601\n'
t policy_mta_sts_policy unknown-key-and-ws 'version:STSv1\nmode:   enforce  \nfoo: bar\nmx:\t*.mx.example.com\nmax_age: 0\n'
t policy_mta_sts_policy enforce-without-mx 'version: STSv1\nmode: enforce\nmax_age: 86400\n'
t policy_mta_sts_policy idn-and-trailing-dot 'version: STSv1\nmode: enforce\nmx: xn--bcher-kva.example.\nmx: b\xc3\xbccher.example\nmax_age: 86400'
t policy_mta_sts_policy duplicate-keys 'version: STSv1\nversion: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 1\nmax_age: 2\n'
t policy_mta_sts_policy wildcard-misuse 'version: STSv1\nmode: enforce\nmx: *.*.example.com\nmx: a*.example.com\nmx: *\nmax_age: 86400\n'
t policy_mta_sts_policy cr-only 'version: STSv1\rmode: enforce\rmx: mx.example\rmax_age: 86400\r'
r() { printf '%b' "$2" | seed policy_tlsrpt_txt "$1"; }
r rfc8460-mailto 'v=TLSRPTv1; rua=mailto:reports@example.com'
r rfc8460-https 'v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt'
r two-uris 'v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.net/x;'
r extension 'v=TLSRPTv1; rua=mailto:tlsrpt@example.org; ext=1 ;'
r two-records 'v=TLSRPTv1; rua=mailto:a@example.com\0v=TLSRPTv1; rua=mailto:b@example.com'
r uri-with-query 'v=TLSRPTv1; rua=mailto:r@example.com?subject=tlsrpt%20x'
r other-uri 'v=TLSRPTv1; rua=ftp://example.com/'
u() { printf '%b' "$2" | seed mta_tlsrpt_rua "$1"; }
u mailto-and-https 'v=TLSRPTv1; rua=mailto:tls%2Brpt@example.com?subject=x,https://r.example.net:8443/v1/tlsrpt'
u two-records 'v=TLSRPTv1; rua=mailto:a@example.com\0v=TLSRPTv1; rua=mailto:b@example.com'
u bare-uri 'mailto:reports@example.com'
u bad-percent 'v=TLSRPTv1; rua=mailto:%zz%4@example.com'
u crlf-in-address 'v=TLSRPTv1; rua=mailto:a%0D%0ARSET%0D%0A@example.com'
u nul-in-address 'mailto:a%00b@example.com'
h() { printf '%s' "$3" | seed "$1" "$2"; }
h policy_tls_required_header header $'From: a@b\r\nTLS-Required: No\r\nSubject: x\r\n\r\nbody\r\n'
h policy_tls_required_header folded $'Subject: x\r\ntls-required:\r\n  no \r\n\r\n'
h policy_tls_required_header in-body-only $'Subject: x\r\n\r\nTLS-Required: No\r\n'
h policy_tls_required_header two-fields $'TLS-Required: yes\nTLS-Required: No\n\n'
# Recipient addresses with and without the +requiretls tag.
h policy_tls_required_header tag 'arvel+requiretls@example.com'
h policy_tls_required_header tag-among-others 'a+news+RequireTLS+x@sub.example.com'
h policy_tls_required_header tag-alone '+requiretls@example.com'
h policy_tls_required_header tag-quoted '"q+requiretls"@example.com'
h policy_tls_required_header tag-twice 'requiretls+requiretls@example.com'

# ---- HAT/RAT patterns and the configuration (examples/portcullis.toml) --------------
i=0
for p in 192.0.2.66 198.51.100.0/24 .partner.example ALL 127.0.0.0/8 10.0.0.0/8 \
  mx.partner.example 2001:db8::/32 ::ffff:192.0.2.1 192.0.2.0/33 '*.example.com' ALL.; do
  i=$((i + 1))
  printf '%s' "$p" | seed policy_hat_pattern "hat-$i"
done
# Several patterns, one per line: the target builds a sender group of them.
printf '10.0.0.0/8\n.partner.example\n2001:db8::/32' | seed policy_hat_pattern group-matches
printf '192.0.2.66\nmx.partner.example' | seed policy_hat_pattern group-misses
printf '198.51.100.0/24\n192.0.2.0/33' | seed policy_hat_pattern group-one-refused
i=0
for p in example.com .example.com ALL b@example.com 'user@sub.example.org' 'B@EXAMPLE.COM.' '"quoted local"@example.com' xn--bcher-kva.example ALL.; do
  i=$((i + 1))
  printf '%s' "$p" | seed policy_rat_pattern "rat-$i"
done
# Several patterns, one per line: the target reads them as a RAT.
printf 'example.com\n.example.org' | seed policy_rat_pattern rat-ours
printf 'xn--bcher-kva.example\nexample.net' | seed policy_rat_pattern rat-idn
printf 'example.com\nALL' | seed policy_rat_pattern rat-all
seed config_load portcullis.toml <"$root/examples/portcullis.toml"
grep -v -E '^\s*(#|$)' "$root/examples/portcullis.toml" | seed config_load portcullis-no-comments.toml
python3 "$here/config_all_sections.py" <"$root/examples/portcullis.toml" | seed config_load portcullis-all-sections.toml

# ---- Spool segments written by a running gateway -------------------------------
"$here/spool.sh" "$here/spool_segment"

# ---- RFC 8460 reports: Appendix B, plain and gzipped, and edge cases -----------------
report="$root/crates/policy/tests/fixtures/rfc8460-appendix-b.json"
gz() { python3 -c 'import gzip, sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))'; }
seed policy_tlsrpt_report appendix-b.json <"$report"
gz <"$report" | seed policy_tlsrpt_report appendix-b.json.gz
sed 's/"mx-host": "\([^"]*\)"/"mx-host": ["\1", "mx9.example"]/' "$report" | seed policy_tlsrpt_report mx-host-array.json
sed 's/certificate-expired/some-future-result/' "$report" | seed policy_tlsrpt_report unknown-result.json
sed 's/2016-04-01T00:00:00Z/2016-03-31T22:00:00.123-02:00/' "$report" | seed policy_tlsrpt_report offset-date.json
head -c 400 "$report" | seed policy_tlsrpt_report truncated.json
gz <"$report" | head -c 120 | seed policy_tlsrpt_report truncated.json.gz
{ gz <"$report"; gz <"$report"; } | seed policy_tlsrpt_report two-members.json.gz
printf '%s' '{"organization-name":"o","date-range":{"start-datetime":"2026-12-01T00:00:00Z","end-datetime":"2026-12-01T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"example.org"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}' |
  seed policy_tlsrpt_report no-policy-found.json
printf '%s' '{"organization-name":"o","date-range":{"start-datetime":"2026-12-01T00:00:00Z","end-datetime":"2026-12-01T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[{"policy":{"policy-type":"tlsa","policy-string":["3 1 1 0123abcd"],"policy-domain":"example.org"},"summary":{"total-successful-session-count":0,"total-failure-session-count":2},"failure-details":[{"result-type":"tlsa-invalid","receiving-mx-hostname":"mx.example.org","receiving-mx-helo":"mx","failed-session-count":2,"failure-reason-code":"x"}]}]}' |
  seed policy_tlsrpt_report tlsa.json
mkdir -p "$here/mta_tlsrpt_mail"
python3 "$here/report_mail.py" "$here/mta_tlsrpt_mail" "$report"

du -sh "$here"
