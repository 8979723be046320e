#!/bin/sh
# First boot of the hkms appliance (demo profile): creates two SoftHSM2 tokens with random
# PINs. User PINs go to /etc/hkms/pins (0400, owner hkms), the SO PIN to
# /root/hkms-so-pin (0400, root) for `hkms init`. PINs are never printed.
set -eu
umask 077
export SOFTHSM2_CONF=/etc/hkms/softhsm2.conf
pin() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
so_pin=$(pin)
printf '%s' "$so_pin" >/root/hkms-so-pin
chmod 0400 /root/hkms-so-pin
for m in a b; do
    user_pin=$(pin)
    runuser -u hkms -- softhsm2-util --init-token --free --label "hkms-$m" \
        --so-pin "$so_pin" --pin "$user_pin" >/dev/null
    printf '%s\n' "$user_pin" >"/etc/hkms/pins/hsm-$m"
    chown hkms:hkms "/etc/hkms/pins/hsm-$m"
    chmod 0400 "/etc/hkms/pins/hsm-$m"
done
touch /var/lib/hkms/softhsm/.created
echo "hkms first boot: SoftHSM2 tokens hkms-a and hkms-b created"
