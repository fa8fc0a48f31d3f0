from controller.shell.cli import main

raise SystemExit(main())
