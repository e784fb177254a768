from celeriac import shared_task


@shared_task
def total(prices: list[int]) -> int:
    return sum(prices)


@shared_task
def refuse(reason: str) -> None:
    raise ValueError(reason)
