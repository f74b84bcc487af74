#!/bin/sh
# App Runner: an UpdateService whose ImageConfiguration replaces every variable.
aws apprunner update-service \
  --service-arn arn:aws:apprunner:us-east-1:123456789012:service/notify-api/8fe1e10304f84fd2b0df550fe98a71fa \
  --region us-east-1 \
  --source-configuration '{
    "ImageRepository": {
      "ImageIdentifier": "123456789012.dkr.ecr.us-east-1.amazonaws.com/notify-api:'"$IMAGE_TAG"'",
      "ImageRepositoryType": "ECR",
      "ImageConfiguration": {
        "Port": "8080",
        "RuntimeEnvironmentVariables": {
          "TWILIO_FROM_NUMBER": "+15005550006",
          "PUBLIC_BASE_URL": "https://notify.example.com",
          "TWILIO_AUTH_TOKEN": "'"$TWILIO_AUTH_TOKEN"'"
        },
        "RuntimeEnvironmentSecrets": {
          "DATABASE_URL": "arn:aws:secretsmanager:us-east-1:123456789012:secret:notify/database-url-AbCdEf"
        }
      }
    },
    "AutoDeploymentsEnabled": false
  }' \
  --instance-configuration '{"Cpu": "1 vCPU", "Memory": "2 GB", "InstanceRoleArn": "arn:aws:iam::123456789012:role/notify-api"}' \
  --network-configuration '{"EgressConfiguration": {"EgressType": "VPC", "VpcConnectorArn": "arn:aws:apprunner:us-east-1:123456789012:vpcconnector/notify-vpc/1/0123456789abcdef"}}' \
  --health-check-configuration '{"Protocol": "HTTP",
                                  "Path": "/health"}' \
  --no-cli-pager
