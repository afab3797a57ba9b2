# Image of the example services (service1..service3) of docker-compose.yml: builds coord from this
# repository on Debian 12.  The ZooKeeper/etcd servers run in their own containers,
# so the server packages are skipped (scripts/deps.sh --no-servers).
FROM debian:12

WORKDIR /src

# dependencies first, so this layer is cached while the sources change
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh --no-servers \
    && rm -rf /var/lib/apt/lists/* /tmp/coord-deps.log

COPY . .
# a build/ directory copied from the host would carry a foreign CMakeCache.txt
RUN rm -rf build \
    && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    && cmake --build build -j"$(nproc)"

ENV COORD_URI=zk://zk1:2181,zk2:2181,zk3:2181/coord-demo
CMD ["sh", "-c", "exec build/examples/hello --uri \"$COORD_URI\""]
