"""What an escalation says, in English and Chinese: the deadline missed, its due time (plant clock), how late it is,
the step that meets it and who holds that step now. The deadlines.escalate handler appends it to its e-mail."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Deadline, Group, Task
from app.services.workflow import plant_time


def _late(seconds: float, lang: str) -> str:
    """A lateness in its two largest units, whole minutes: 2 d 3 h / 2 天 3 小时."""
    minutes = max(int(seconds // 60), 0)
    days, hours, minutes = minutes // 1440, minutes % 1440 // 60, minutes % 60
    units = ("天", "小时", "分钟") if lang == "zh-CN" else ("d", "h", "min")
    parts = [(days, units[0]), (hours, units[1]), (minutes, units[2])]
    shown = [(n, unit) for n, unit in parts if n][:2] or [(0, units[2])]
    return " ".join(f"{n} {unit}" for n, unit in shown)


def _holder(task: Task, lang: str) -> str:
    if task.assignee is not None:
        return task.assignee.full_name or task.assignee.username
    group = db.session.scalar(select(Group).where(Group.name == task.group_name)) if task.group_name else None
    if group is None:
        return task.group_name or ("无人" if lang == "zh-CN" else "nobody")
    label = (group.label_zh if lang == "zh-CN" else group.label) or group.label or group.name
    return f"用户组“{label}”" if lang == "zh-CN" else f"the group {label}"


def open_escalations(instance_id: int, now: datetime, lang: str) -> list[str]:
    """The notes of an instance's escalated deadlines not met yet, in lang, earliest due first."""
    missed = db.session.scalars(select(Deadline).where(
        Deadline.instance_id == instance_id, Deadline.escalated_at.is_not(None), Deadline.met_at.is_(None))
        .order_by(Deadline.due_at, Deadline.id))
    return [escalation_note(deadline, now)[lang] for deadline in missed]


def overdue_steps(instance_id: int, now: datetime, lang: str, besides: int | None = None) -> list[str]:
    """What each overdue open step of an instance says (an escalation task shows the step it escalates): its name,
    due time, how late it is and who holds it, in lang; `besides` leaves out the task being shown."""
    due = db.session.scalars(select(Task).where(
        Task.instance_id == instance_id, Task.state == "ready", Task.kind == "user", Task.due_at.is_not(None),
        Task.due_at < now, Task.id != (besides or 0)).order_by(Task.due_at, Task.id))
    zone = plant_time.zone()
    notes = []
    for task in due:
        when, late = plant_time.format_moment(task.due_at, zone), _late((now - task.due_at).total_seconds(), lang)
        if lang == "zh-CN":
            notes.append(f"逾期步骤：{task.name_zh or task.name}，截止 {when}，已逾期 {late}，"
                         f"由 {_holder(task, lang)} 处理。")
        else:
            notes.append(f"Overdue step: {task.name}, due {when}, {late} late, held by {_holder(task, lang)}.")
    return notes


def escalation_note(deadline: Deadline, now: datetime) -> dict[str, str]:
    """The note for each language ("en", "zh-CN")."""
    due = plant_time.format_moment(deadline.due_at, plant_time.zone())
    late = (now - deadline.due_at).total_seconds()
    step = db.session.scalar(select(Task).where(
        Task.instance_id == deadline.instance_id, Task.element_id == deadline.met_by, Task.state == "ready")
        .order_by(Task.id).limit(1))
    notes = {}
    for lang in ("en", "zh-CN"):
        if lang == "zh-CN":
            text = f"时限：{deadline.label_zh or deadline.label}，截止 {due}，已逾期 {_late(late, lang)}。"
            if step is not None:
                text += f"满足该时限的步骤：{step.name_zh or step.name}，目前由 {_holder(step, lang)} 处理。"
            else:
                text += "满足该时限的步骤尚未开始。"
        else:
            text = f"Deadline: {deadline.label}, due {due}, {_late(late, lang)} late."
            if step is not None:
                text += f" The step that meets it: {step.name}, now held by {_holder(step, lang)}."
            else:
                text += " The step that meets it has not started yet."
        notes[lang] = text
    return notes
