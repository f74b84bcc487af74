#!/bin/sh
# App Runner in the AWS CLI's shorthand, as most scripts write it: every field either reaches
# the manifest or is listed as not converted.
aws apprunner create-service --service-name growth-api --region eu-west-1 \
  --source-configuration 'ImageRepository={ImageIdentifier=123456789012.dkr.ecr.eu-west-1.amazonaws.com/growth-api:'"$IMAGE_TAG"',
    ImageRepositoryType=ECR,
    ImageConfiguration={Port=8080,StartCommand="gunicorn app:server --workers 4",
      RuntimeEnvironmentVariables={LOG_LEVEL=info,PUBLIC_URL=https://growth.example.com},
      RuntimeEnvironmentSecrets={DATABASE_URL=arn:aws:secretsmanager:eu-west-1:123456789012:secret:growth/db-AbCdEf}}},
    AutoDeploymentsEnabled=false' \
  --instance-configuration Cpu=2048,Memory=4096,InstanceRoleArn=arn:aws:iam::123456789012:role/growth-api \
  --network-configuration 'EgressConfiguration={EgressType=DEFAULT},IngressConfiguration={IsPubliclyAccessible=true}' \
  --health-check-configuration Protocol=HTTP,Path=/api/health,Interval=10 \
  --auto-scaling-configuration-arn arn:aws:apprunner:eu-west-1:123456789012:autoscalingconfiguration/growth/1/a1b2 \
  --tags Key=team,Value=growth Key=cost-center,Value=4412 \
  --output json
