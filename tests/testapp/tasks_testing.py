"""Tasks for tests/test_testing_tools.py: they read the database of the test that enqueues them."""

from __future__ import annotations

from django.contrib.auth.models import User

from django_qtasks import AsyncTask, SyncTask, app, task


@task
def count_users(username: str) -> int:
    return User.objects.filter(username=username).count()


@task
async def acount_users(username: str) -> int:
    return await User.objects.filter(username=username).acount()


@app.task(echo=True)
def rename_user(self: SyncTask, username: str, new_name: str) -> str:
    self.ctx.get_logger().info("renaming %s", username)
    User.objects.filter(username=username).update(username=new_name)
    return new_name


@app.task(echo=True)
async def spawns_count(self: AsyncTask, username: str) -> int:
    child = await self.add_task(username, task_name="count_users")
    return child.returning


@app.task(echo=True, retry=2, retry_on_exc=[LookupError])
def fails_until_user(self: SyncTask, username: str) -> str:
    if not User.objects.filter(username=username).exists():
        User.objects.create(username=username)
        raise LookupError(f"{username} was missing on attempt {self.ctx.get_metadata().attempts}")
    return "found"
