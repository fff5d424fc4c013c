"""The registry is the source of truth for professionals and CPTS: it consumes no other service's events."""

from cpts_platform.service import Subscription

SUBSCRIPTIONS: list[Subscription] = []
