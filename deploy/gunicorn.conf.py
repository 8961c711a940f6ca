"""gunicorn settings for Qualiflow's web processes: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

The web workers run no scheduler (`wsgi:app` starts none); run `flask scheduler run` beside them. Every value can be
overridden on the command line or by the environment variables read here."""
import os

bind = os.environ.get("QUALIFLOW_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("QUALIFLOW_WEB_WORKERS", 3))  # processes; about 2 per core
threads = int(os.environ.get("QUALIFLOW_WEB_THREADS", 4))  # threads per process (gthread worker)
worker_class = "gthread"
# Seconds an idle keep-alive connection stays open. gunicorn's default (2 s) closes connections that clients
# (API clients, a proxy) are about to reuse: a request sent just as the server closes the connection gets no
# answer ("connection reset"). The load run (bench/load.py) lost 1 request in 500 that way at 2 s and none at 75 s,
# nginx's own default; a proxy in front should keep its upstream connections idle for less than this.
keepalive = int(os.environ.get("QUALIFLOW_KEEPALIVE_SECONDS", 75))
timeout = 120  # a worker busy this long on one request is killed and replaced (its transaction rolls back)
graceful_timeout = 30  # on reload or stop, requests in flight get this long to finish
max_requests = 2000  # a worker is replaced now and then (memory), with jitter so they do not restart together
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("QUALIFLOW_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
