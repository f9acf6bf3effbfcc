# The example's inputs. The VPC and subnet ids are placeholders: replace
# them with yours. The tests render the switchyard config from `cluster`
# (terraform/tests/render.py) and check it with `switchyard config check`.

package_url    = "https://artifacts.example.com/switchyard/switchyard_0.1.0-1_amd64.deb"
package_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
domain         = "example.com"

networks = {
  us-east = {
    aws_region = "us-east-1"
    vpc_id     = "vpc-0a10000000000000a"
    subnet_id  = "subnet-0a10000000000000a"
  }
  eu-west = {
    aws_region = "eu-west-1"
    vpc_id     = "vpc-0b20000000000000b"
    subnet_id  = "subnet-0b20000000000000b"
  }
  ap-south = {
    aws_region = "ap-south-1"
    vpc_id     = "vpc-0c30000000000000c"
    subnet_id  = "subnet-0c30000000000000c"
  }
}

cluster = {
  name               = "prod"
  lease_ttl          = "5s"
  grpc_port          = 7400
  metrics_port       = 9400
  probe_metrics_port = 9401
  etcd_client_port   = 2379
  etcd_peer_port     = 2380
  failback           = "auto"
  db_failover        = "manual"

  regions = [
    {
      name          = "us-east"
      weight        = 100
      priority      = 1
      cidr          = "10.10.0.0/16"
      controller_ip = "10.10.0.10"
      probe_ip      = "10.10.0.11"
      etcd_ip       = "10.10.0.20"
    },
    {
      name          = "eu-west"
      weight        = 100
      priority      = 2
      cidr          = "10.20.0.0/16"
      controller_ip = "10.20.0.10"
      probe_ip      = "10.20.0.11"
      etcd_ip       = "10.20.0.20"
    },
    {
      name          = "ap-south"
      weight        = 50
      priority      = 3
      cidr          = "10.30.0.0/16"
      controller_ip = "10.30.0.10"
      probe_ip      = "10.30.0.11"
      etcd_ip       = "10.30.0.20"
    },
  ]

  services = [
    {
      name   = "api"
      record = "api.example.com."
      ttl    = 30
      type   = "A"
      endpoints = [
        { region = "us-east", value = "192.0.2.10", target = "10.10.1.10:8080" },
        { region = "eu-west", value = "198.51.100.10", target = "10.20.1.10:8080" },
        { region = "ap-south", value = "203.0.113.10", target = "10.30.1.10:8080" },
      ]
      checks = [
        { kind = "http", interval = "2s", timeout = "1s", path = "/healthz" },
        { kind = "tcp", interval = "5s", timeout = "2s" },
      ]
    },
  ]

  databases = [
    {
      name          = "orders"
      kind          = "mariadb"
      writer_record = "orders-writer.example.com."
      max_lag       = "5s"
      credentials   = "orders-admin"
      members = [
        { id = "orders-1", region = "us-east", address = "10.10.3.10:3306", promotion = "prefer" },
        { id = "orders-2", region = "eu-west", address = "10.20.3.10:3306", promotion = "neutral" },
        { id = "orders-3", region = "ap-south", address = "10.30.3.10:3306", promotion = "must_not" },
      ]
    },
  ]

  credentials = [
    { name = "orders-admin", user = "switchyard", password_env = "SWITCHYARD_ORDERS_PASSWORD" },
  ]

  dns = {
    backend                 = "route53"
    zone                    = "example.com."
    max_requests_per_second = 5
  }
}
