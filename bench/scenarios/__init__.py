"""One module per benchmark scenario; each exposes `async def run(h: Harness, quick: bool) -> Result`."""
