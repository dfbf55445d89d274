# Failover drill client (cmd/rconn-proxy TestFailoverDrill): redis-rb's cluster client writes
# one key of the tag's slot every INTERVAL ms for DURATION ms. argv: host port tag duration
# interval. Prints "OK <epoch ms>" per write and "ERR <epoch ms> <error>" per failed one.
require 'redis'
host, port, tag = ARGV[0], ARGV[1].to_i, ARGV[2]
fin = Time.now + ARGV[3].to_f / 1000
interval = ARGV[4].to_f / 1000
$stdout.sync = true
r = nil
i = 0
while Time.now < fin
  i += 1
  begin
    r ||= Redis.new(cluster: ["redis://#{host}:#{port}"], timeout: 1.0)
    r.set("drill:{#{tag}}:#{i % 100}", i)
    puts "OK #{(Time.now.to_f * 1000).to_i}"
  rescue StandardError => e
    puts "ERR #{(Time.now.to_f * 1000).to_i} #{e.class}: #{e.message.gsub("\n", ' ')}"
  end
  sleep interval
end
