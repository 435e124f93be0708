"""A progress bar over chunks of posterior draws."""

__all__ = ["chunked"]


def chunked(total, size, progressbar, description):
    """Yield (start, stop) chunks of ``range(total)``, showing progress when asked."""
    bounds = [(lo, min(lo + size, total)) for lo in range(0, total, size)]
    if not progressbar or len(bounds) < 2:
        yield from bounds
        return
    from rich.progress import Progress

    with Progress(transient=False) as progress:
        task = progress.add_task(description, total=total)
        for lo, hi in bounds:
            yield lo, hi
            progress.update(task, advance=hi - lo)
