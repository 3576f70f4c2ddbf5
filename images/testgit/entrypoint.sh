#!/bin/sh
# Host key per container, the gate's public key, seeded repositories; then sshd in the foreground.
set -eu
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
install -d -o git -g git -m 0700 /srv/git/.ssh
printf '%s\n' "${TESTGIT_AUTHORIZED_KEY:-}" > /srv/git/.ssh/authorized_keys
chown git:git /srv/git/.ssh/authorized_keys
chmod 0600 /srv/git/.ssh/authorized_keys
for name in ${TESTGIT_REPOS:-project}; do
  repo=/srv/git/$name.git
  [ -d "$repo" ] && continue
  git init -q --bare -b main "$repo"
  seed=$(mktemp -d)
  git -C "$seed" init -q -b main
  printf '# %s\n\nSeeded by the test upstream.\n' "$name" > "$seed/README.md"
  git -C "$seed" add README.md
  git -C "$seed" -c user.name=testgit -c user.email=testgit@bottle.test commit -q -m "seed $name"
  git -C "$seed" push -q "$repo" main
  rm -rf "$seed"
  chown -R git:git "$repo"
done
exec /usr/sbin/sshd -D -e
