"""Contract tests of the sandbox emulators, over real loopback HTTP."""
