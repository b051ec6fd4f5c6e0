#!/usr/bin/env bash
# The demo: migrate a fresh SQLite database, start a worker (and beat) on django://,
# enqueue a few example tasks and print how each one ends.
# With --serve, keep the worker and the admin running at http://127.0.0.1:8000/admin/.
set -euo pipefail
cd "$(dirname "$0")"
python=../.venv/bin/python
export DJANGO_SETTINGS_MODULE=testproject.settings QTASKS_DB=sqlite

$python manage.py migrate --verbosity 0
$python manage.py shell -c "
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username='admin').exists():
    User.objects.create_superuser('admin', 'admin@example.com', 'admin')
"
$python manage.py qtasks_worker --concurrency 4 --beat &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker' EXIT

if [[ "${1:-}" == "--serve" ]]; then
    echo "Admin: http://127.0.0.1:8000/admin/ (admin / admin). Ctrl-C stops both."
    $python manage.py runserver 127.0.0.1:8000
else
    $python manage.py run_demo
    echo
    echo "Every task above is a row in testproject/db.sqlite3. 'make run' serves the admin."
fi
