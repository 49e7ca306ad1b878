"""``python -m normcli``: the command line."""

from normcli.cli.entry import main

if __name__ == "__main__":
    main()
