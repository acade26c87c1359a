"""IMAP QUOTA (RFC 9208) with the STORAGE resource: one quota root per user, named "",
covering all of the user's mailboxes; limits are set by the administrator
(``coi user quota``, ``default_quota``), so SETQUOTA is refused."""

from __future__ import annotations

from coi.imap.server.errors import CommandNo
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd
from coi.store import quota

ROOT = ""


def refuse_over_quota(usage: tuple[int, int], adding: int) -> None:
    """RFC 9208 §5.3 (OVERQUOTA): nothing is stored past the user's STORAGE limit
    (`usage` read by the command beside its other reads)."""
    if quota.exceeds(usage, adding):
        raise CommandNo(f"Mailbox is over quota ({usage[0]} octets)", "OVERQUOTA")


async def usage_of(session: Session) -> tuple[int, int]:
    """(limit, octets used); usage is 0 when there is no limit."""
    return await session.store.read_usage(session.user_id, session.config.default_quota)


def _quota_line(limit: int, used: int) -> str:
    """RFC 9208 §5.1: STORAGE usage and limit in units of 1024 octets (usage rounded up)."""
    return f'QUOTA "" (STORAGE {(used + 1023) // 1024} {limit // 1024})'


async def handle_getquota(session: Session, command: cmd.GetQuota) -> str:
    limit, used = await usage_of(session)
    if command.root != ROOT or not limit:
        raise CommandNo(f"No quota root {command.root!r}", "NONEXISTENT")
    session.untagged(_quota_line(limit, used))
    return "GETQUOTA completed"


async def handle_getquotaroot(session: Session, command: cmd.GetQuotaRoot) -> str:
    from coi.imap.server.mailbox import find

    found = await find(session, command.mailbox)
    name = session.mailbox_name(found.name)
    limit, used = await usage_of(session)
    if not limit:  # §4.3: a mailbox without a quota root gets an empty QUOTAROOT
        session.untagged(f"QUOTAROOT {name}")
        return "GETQUOTAROOT completed"
    session.untagged(f'QUOTAROOT {name} ""')
    session.untagged(_quota_line(limit, used))
    return "GETQUOTAROOT completed"


async def handle_setquota(session: Session, command: cmd.SetQuota) -> str:
    raise CommandNo("Quotas are set by the administrator ('coi user quota')", "NOPERM")


ROUTES: dict[type, Route] = {
    cmd.GetQuota: Route(handle_getquota, AUTH),
    cmd.GetQuotaRoot: Route(handle_getquotaroot, AUTH),
    cmd.SetQuota: Route(handle_setquota, AUTH),
}
