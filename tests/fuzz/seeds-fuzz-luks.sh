#!/bin/sh
# seeds-fuzz-luks.sh DIR: seeds for tests/fuzz/fuzz-luks.c, made with
# qemu-img rather than kept as binaries in the tree: one LUKS header area
# per cipher qemu-img creates (the payload cut off), with PBKDF2 rounds
# patched down to 1 so that the fuzzer gets past the parser into key slot
# decryption and the anti-forensic merge at full speed.  (The patched
# headers no longer unlock with any passphrase; the paths still run.)
set -eu
dir=$1
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

be32_one() { printf '\000\000\000\001' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

n=0
for opts in "" \
	"cipher-alg=aes-128,cipher-mode=xts" \
	"cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256" \
	"cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=plain,hash-alg=sha1" \
	"cipher-alg=aes-256,cipher-mode=ecb"; do
	n=$((n + 1))
	# qemu-img's PBKDF2 benchmark fails now and then on a busy VM: retry.
	for try in 1 2 3 4 5 6 7 8 9 10; do
		if qemu-img create -q -f luks --object secret,id=s,data=fuzz \
			-o "key-secret=s,iter-time=10${opts:+,$opts}" "$tmp/s.luks" 1M 2>/dev/null; then
			break
		fi
	done
	[ -s "$tmp/s.luks" ] || { echo "seeds-fuzz-luks: qemu-img failed for '$opts'" >&2; exit 1; }
	# The header area ends where the payload starts (sector count at byte 104).
	payload=$(od -An -tu1 -j104 -N4 "$tmp/s.luks" | awk '{print (($1*256+$2)*256+$3)*256+$4}')
	head -c $((payload * 512)) "$tmp/s.luks" >"$dir/qemu-$n"
	be32_one "$dir/qemu-$n" 164	# master key digest iterations
	be32_one "$dir/qemu-$n" 212	# key slot 0 iterations
	rm -f "$tmp/s.luks"
done
