"""ghostcache-client: a command-line client that speaks only GhostCache's public HTTP
contract (docs/API.md), with end-to-end encrypted chats (GCE1, docs/E2EE.md) done on
this machine. See docs/CLIENT.md for the commands."""
