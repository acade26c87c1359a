"""coi benchmarks against Debian's Dovecot (issue 7): see bench/README.md."""
