"""Runs every benchmark and prints ratios measured side by side in one run."""

from bench import upload

if __name__ == "__main__":
    upload.main()
