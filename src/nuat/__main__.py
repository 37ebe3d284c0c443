from nuat.cli import main

raise SystemExit(main())
