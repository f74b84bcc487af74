aws apprunner create-service --service-name notify-worker \
  --source-configuration file://notify-worker.json \
  --profile prod
