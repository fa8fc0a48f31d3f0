from controller.shell.cli.main import entry

entry()
