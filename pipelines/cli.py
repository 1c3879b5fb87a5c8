"""The `hl` command line: thin click commands over the library API."""
import click


@click.group()
def main() -> None:
    """hl: video highlight detection."""


if __name__ == "__main__":
    main()
