//! The embedded store is `s3s-fs`, which gets two listing details wrong that real clients
//! depend on: it treats an empty `delimiter=` (sent by rclone) as a delimiter, cutting every key
//! after its first character, and it leaves `<ETag>` out of listings (s3cmd's sync needs it).
//! [`Fs`] wraps it and fixes both the way S3 behaves; every other operation is passed through.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;

pub struct Fs(pub FileSystem);

impl Fs {
    /// S3 lists each object's ETag; the store knows it only per object.
    async fn fill_etags<T: Clone>(&self, req: &S3Request<T>, bucket: &str, objects: &mut [Object]) {
        for obj in objects.iter_mut().filter(|o| o.e_tag.is_none()) {
            let Some(key) = obj.key.clone() else { continue };
            let Ok(input) = HeadObjectInput::builder().bucket(bucket.to_owned()).key(key).build() else { continue };
            let head = req.clone().map_input(|_| input);
            if let Ok(resp) = self.0.head_object(head).await {
                obj.e_tag = resp.output.e_tag;
            }
        }
    }
}

/// S3 treats `delimiter=` as no delimiter at all.
fn no_empty(delimiter: Option<String>) -> Option<String> {
    delimiter.filter(|d| !d.is_empty())
}

#[async_trait::async_trait]
impl S3 for Fs {
    async fn list_objects(&self, mut req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        req.input.delimiter = no_empty(req.input.delimiter.take());
        let bucket = req.input.bucket.clone();
        let probe = req.clone().map_input(|_| ());
        let mut resp = self.0.list_objects(req).await?;
        if let Some(contents) = resp.output.contents.as_mut() {
            self.fill_etags(&probe, &bucket, contents).await;
        }
        Ok(resp)
    }

    async fn list_objects_v2(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        req.input.delimiter = no_empty(req.input.delimiter.take());
        let bucket = req.input.bucket.clone();
        let probe = req.clone().map_input(|_| ());
        let mut resp = self.0.list_objects_v2(req).await?;
        if let Some(contents) = resp.output.contents.as_mut() {
            self.fill_etags(&probe, &bucket, contents).await;
        }
        Ok(resp)
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.0.create_bucket(req).await
    }
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.0.copy_object(req).await
    }
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.0.delete_bucket(req).await
    }
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.0.delete_object(req).await
    }
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.0.delete_objects(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.0.get_bucket_location(req).await
    }
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.0.get_object(req).await
    }
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.0.head_bucket(req).await
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.0.head_object(req).await
    }
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.0.list_buckets(req).await
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.0.put_object(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.0.create_multipart_upload(req).await
    }
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.0.upload_part(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.0.upload_part_copy(req).await
    }
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.0.list_parts(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.0.complete_multipart_upload(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.0.abort_multipart_upload(req).await
    }
}
