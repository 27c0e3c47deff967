"""`python -m ghostcache.client`: the same as the `ghostcache-client` script."""

from .cli import main

raise SystemExit(main())
