"""Placeholder CLI; replaced below."""
def main() -> None:
    pass
