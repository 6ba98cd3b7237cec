from tickwork.cli import main

raise SystemExit(main())
