# fivehundred/postgres: PostgreSQL from Debian's packages on the harness's own Debian base.
# The cluster is made at build time so a container starts in about a second; the password is
# set at each start from the environment (see postgres-entrypoint.sh), never baked in.
ARG BASE
FROM ${BASE}
# No main cluster from the package's postinst (the build makes its own below), and no service
# started while installing (there is no init in a build container).
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/fivehundred.conf \
 && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
ENV PGDATA=/var/lib/postgresql/data PGBIN=/usr/lib/postgresql/15/bin
RUN install -d -o postgres -g postgres -m 700 "$PGDATA" \
 && su postgres -s /bin/sh -c '"$PGBIN/initdb" -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 --no-sync >/dev/null' \
 && echo 'host all all 0.0.0.0/0 scram-sha-256' >> "$PGDATA/pg_hba.conf"
COPY postgres-entrypoint.sh /usr/local/bin/fivehundred-postgres
USER postgres
# Fast shutdown on `docker stop`: SIGTERM would wait for every client to leave.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/fivehundred-postgres"]
