"""`python -m gpudoctor` is the same as the `gpudoctor` command."""

from .entry import main

if __name__ == "__main__":
    main()
