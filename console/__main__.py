from console.web.cli import main

raise SystemExit(main())
