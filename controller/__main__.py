from controller.shell.cli import entry

entry()
